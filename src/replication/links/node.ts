/** The Node-only replication transports: TCP/TLS links and the TCP and WebSocket servers. */
export { listenReplicaTcp, connectReplicaTcp, type ListenReplicaOptions, type ConnectReplicaOptions, type ReplicaServer, type ReplicaTlsServerOptions } from './tcp.js';
export { listenReplicaWs, DEFAULT_WS_PATH, type ListenReplicaWsOptions } from './websocket-server.js';
