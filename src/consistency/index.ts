/**
 * Application-consistent snapshots across many writers (neutral: browser, workers, Node).
 * Node-only transports (worker_threads, local sockets) are exported from `stratadisk/node`.
 */
export { Coordinator, DEFAULT_FREEZE_LIMIT_MS, DEFAULT_FREEZE_TIMEOUT_MS, type CoordinatorOptions, type CoordinatorEvent, type AttemptState, type ParticipantHandle, type SnapshotTarget } from './coordinator.js';
export { Participant, type ParticipantOptions, type ParticipantCallbacks, type FreezeContext, type ThawContext, type FreezeAnswer } from './participant.js';
export { GroupHost, type GroupHostOptions, type HostVolume } from './host.js';
export { WriteGate, FreezableVolume, type WritableVolume } from './gate.js';
export { realClock, type Clock, type Link, type LinkHandlers } from './link.js';
export { PROTOCOL_VERSION, LIMITS as GROUP_LIMITS, parseToHost, parseToMember, type SetSnapshot, type GroupVolumeInfo, type ToHost, type ToMember } from './protocol.js';
export { localLinkPair } from './local.js';
export { repairSnapshotSets, isDefaultSetName, type SetMember } from './repair.js';
export { portLink, type DomPortLike, type NodePortLike } from './message-port.js';
export { serveBroadcast, connectBroadcast, electHost, type BroadcastOptions, type Election } from './broadcast-channel.js';
