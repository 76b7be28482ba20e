/**
 * Wire types of replication through the worker (`volume.replication` on the page): where a
 * session goes, its options, status and events. The sessions themselves run in the worker that
 * owns the volume (./replication-calls.ts); the page only asks and listens.
 *
 * A token in a target is the application's secret: it crosses to the worker once, is used for
 * the link's handshake (src/replication/links/auth.ts) and is never part of a status, an event
 * or an error message.
 */
import type { Mode } from '../replication/protocol.js';
import type { FreezePolicy, SessionState, SessionStatus } from '../replication/primary.js';
import type { Role } from '../replication/roles.js';

/** A volume's handle in its worker (./protocol.ts HandleId; not imported, so protocol.ts can extend ReplicationApi) */
type HandleId = number;

/** Timing of a link's liveness check (defaults: 1 s beats, 5 s of silence closes the link). */
export interface LinkTiming {
  heartbeatMs?: number;
  deadAfterMs?: number;
  /** how long opening the link may take (default 10 s) */
  connectTimeoutMs?: number;
}

/**
 * Where a primary replicates to:
 * - `{ broadcast: channel }`: a volume in another tab (or worker) of this origin serving with
 *   `serveReplica({ broadcast: channel })` on the same channel name. The two ends are named
 *   `self` (default 'primary') and `peer` (default 'replica') on the channel; a `token` (both
 *   sides the same) adds the mutual token handshake, else every tab of the origin is trusted.
 * - `{ websocket: url, token }`: a replica server (Node: `listenReplicaWs`, the CLI's
 *   `serve-replica`); `ws://` only to loopback, `wss://` anywhere. The server must list this
 *   page's origin.
 */
export type ReplicationTarget =
  | ({ broadcast: string; self?: string; peer?: string; token?: string } & LinkTiming)
  | ({ websocket: string; token: string } & LinkTiming);

/** Where a secondary takes its primary from (pages can serve only over a BroadcastChannel). */
export type ReplicaSource = { broadcast: string; self?: string; peer?: string; token?: string } & LinkTiming;

export interface ReplicateOptions {
  /**
   * the session's name, unique in the worker: 1 to 64 letters, digits, . _ - (default: the
   * channel, or the server's host-port). Its out-of-sync bitmap and activity log are kept in
   * the volume under this name, so the same name after a reload resyncs only what is missing.
   */
  name?: string;
  /** `sync` (a write completes when the secondary has it durably; default) or `async` */
  mode?: Mode;
  /** consistency group (default 'default'); a group's sessions share one mode */
  group?: string;
  /** while frozen: `run` (writes go on, recorded out of sync; default) or `block` */
  policy?: FreezePolicy;
  /** a secondary silent about the oldest write this long fails the session (default 30 s) */
  ackTimeoutMs?: number;
}

export interface PromoteOptions {
  /** promote a secondary whose resync was interrupted, as it is (its content is then no single point in time) */
  force?: boolean;
  /** promote such a secondary after going back to its last consistent state (the snapshot the resync kept) */
  revertToConsistent?: boolean;
}

/** A session as the page sees it: the session's status plus its group and where it goes (no token). */
export interface ReplicationSessionInfo extends SessionStatus {
  group: string;
  target: string;
}

export interface ReplicaServingInfo {
  /** where it listens, e.g. `broadcast:disks (replica <- primary)` */
  source: string;
  /** a primary is connected */
  connected: boolean;
  session: string | null;
  mode: Mode | null;
  applied: number;
  durable: number;
  /** why the last connection ended */
  lastEnd: string | null;
}

export interface VolumeReplicationStatus {
  role: Role;
  /** the data generation this volume holds (see src/replication/roles.ts) */
  generation: string;
  /** a secondary: false while a resync runs (its content is then no single point in time) */
  consistent: boolean;
  /** the worker's replication is frozen (a copy failed, or freeze() was called) */
  frozen: boolean;
  freezeReason: string | null;
  /** this volume's primary sessions */
  sessions: ReplicationSessionInfo[];
  /** this volume serving as a secondary, or null */
  serving: ReplicaServingInfo | null;
}

export type ReplicationEvent =
  | { type: 'state'; session: string; group: string; state: SessionState }
  /** resync progress in blocks */
  | { type: 'progress'; session: string; group: string; done: number; total: number }
  | { type: 'failed'; session: string; group: string; code: string; message: string }
  | { type: 'frozen'; reason: string; ms: number; sessions: number }
  /** serving as a secondary: a primary connected, or its connection ended */
  | { type: 'replica'; state: 'listening' | 'connected' | 'disconnected' | 'stopped'; session: string | null; reason: string | null };

/** The engine's replication methods (part of EngineApi). */
export interface ReplicationApi {
  /** Open a primary session of volume `h` and connect it; resolves once it streams (the resync runs on). */
  replicateTo(h: HandleId, target: ReplicationTarget, options?: ReplicateOptions, onEvent?: (e: ReplicationEvent) => void): Promise<ReplicationSessionInfo>;
  /** Serve volume `h` as a secondary for a primary in another tab; resolves once listening. */
  serveReplica(h: HandleId, source: ReplicaSource, onEvent?: (e: ReplicationEvent) => void): Promise<void>;
  replicationStatus(h: HandleId): Promise<VolumeReplicationStatus>;
  /** Resolves when every session of `h` (or session `name`) has finished its resync. */
  replicationSynced(h: HandleId, name?: string): Promise<void>;
  /** Freeze every session in this worker (every group). */
  replicationFreeze(h: HandleId, reason?: string): Promise<void>;
  /** Reconnect every session in this worker that is not streaming, and resync. */
  replicationResume(h: HandleId): Promise<void>;
  /** Stop session `name` of `h` in order (all of them, and serving, when absent). */
  replicationStop(h: HandleId, name?: string): Promise<void>;
  replicationPromote(h: HandleId, options?: PromoteOptions): Promise<VolumeReplicationStatus>;
  replicationDemote(h: HandleId): Promise<VolumeReplicationStatus>;
}
