/**
 * The transports replication runs over, browser-safe part: token authentication, heartbeats,
 * the WebSocket client, tab-to-tab links over a BroadcastChannel, and fault injection for
 * tests. The Node servers and the TCP/TLS link are in ./node.ts (exported from `stratadisk/node`).
 */
export { authenticateLink, parseAuthMessage, AUTH_TIMEOUT_MS, type AuthOptions, type AuthRole } from './auth.js';
export { heartbeatLink, HEARTBEAT_MS, DEAD_AFTER_MS, type HeartbeatOptions } from './heartbeat.js';
export { secureLink, type LinkSecurityOptions } from './secure.js';
export { parseReplicaUrl } from './url.js';
export { connectReplicaWs, webSocketLink, MAX_WS_MESSAGE, type ConnectReplicaWsOptions, type WebSocketLike } from './websocket.js';
export { broadcastLink, pairChannelName, type BroadcastLinkOptions } from './broadcast.js';
export { faultLink, faultLinkPair, messageBytes, type FaultLink, type LinkFaultPlan, type LinkFaultDirection, type LinkFaultCounters } from './fault.js';
