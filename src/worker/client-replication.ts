/**
 * Replication of a RemoteVolume (`volume.replication`): the sessions run in the worker that owns
 * the volume (src/worker/replication-calls.ts); each method here is one call to it. Events
 * (session state, resync progress, failures, the freeze) arrive through a callback, passed to the
 * worker as a comlink proxy like the progress callbacks of `check` and `mirror`.
 *
 * ```ts
 * // tab A: replicate to the volume of tab B, synchronously
 * await vol.replication.replicateTo({ broadcast: 'disk-1' }, { mode: 'sync', onEvent: console.log });
 * // tab B
 * await volB.replication.serveReplica({ broadcast: 'disk-1' });
 * // or to a Node replica server (its token is the page's secret)
 * await vol.replication.replicateTo({ websocket: 'wss://replica.example:7443/replica', token }, { mode: 'async' });
 * ```
 */
import { proxy, type Remote } from 'comlink';
import type { EngineApi, HandleId } from './protocol.js';
import type {
  PromoteOptions,
  ReplicaSource,
  ReplicateOptions,
  ReplicationEvent,
  ReplicationSessionInfo,
  ReplicationTarget,
  VolumeReplicationStatus,
} from './replication-protocol.js';

/** What RemoteReplication needs from its volume (kept there: the closed check). */
export interface ReplicationHost {
  readonly handle: HandleId;
  api(): Remote<EngineApi>;
}

export class RemoteReplication {
  /** @internal */
  constructor(private readonly host: ReplicationHost) {}

  /**
   * Replicate this volume (open for writing) to `target`: `{ broadcast: channel }` for a volume
   * serving in another tab of this origin, or `{ websocket: url, token }` for a replica server.
   * Resolves when the session streams (the first copy, of allocated blocks only, goes on in the
   * background: `synced()`); rejects when the secondary does not answer, refuses (another
   * primary, another size), or was written apart (`split-brain`). Sessions of one `group` freeze
   * together; every group of this worker freezes when any session fails to copy a write.
   */
  async replicateTo(target: ReplicationTarget, options: ReplicateOptions & { onEvent?: (e: ReplicationEvent) => void } = {}): Promise<ReplicationSessionInfo> {
    const { onEvent, ...rest } = options;
    return this.host.api().replicateTo(this.host.handle, target, rest, onEvent ? proxy(onEvent) : undefined);
  }

  /**
   * Serve this volume as the secondary of a primary in another tab, on the BroadcastChannel
   * `source.broadcast`: one primary at a time, accepted again after a disconnect. Resolves once
   * listening. The volume must not be a primary (demote it first).
   */
  async serveReplica(source: ReplicaSource, options: { onEvent?: (e: ReplicationEvent) => void } = {}): Promise<void> {
    return this.host.api().serveReplica(this.host.handle, source, options.onEvent ? proxy(options.onEvent) : undefined);
  }

  /** Role, data generation, this volume's sessions (state, lag, out-of-sync bytes, resync) and serving. */
  async status(): Promise<VolumeReplicationStatus> {
    return this.host.api().replicationStatus(this.host.handle);
  }

  /** Resolves when every session of this volume (or session `name`) has finished its resync. */
  async synced(name?: string): Promise<void> {
    return this.host.api().replicationSynced(this.host.handle, name);
  }

  /** Freeze every session of this worker, every group: writes go on recorded out of sync (or wait, policy `block`). */
  async freeze(reason?: string): Promise<void> {
    return this.host.api().replicationFreeze(this.host.handle, reason);
  }

  /** Reconnect every frozen session of this worker and resync only what the secondaries lack. */
  async resume(): Promise<void> {
    return this.host.api().replicationResume(this.host.handle);
  }

  /** End session `name` in order (every session and the serving of this volume when absent). */
  async stop(name?: string): Promise<void> {
    return this.host.api().replicationStop(this.host.handle, name);
  }

  /** Failover: this secondary becomes a primary with a data generation of its own. */
  async promote(options: PromoteOptions = {}): Promise<VolumeReplicationStatus> {
    return this.host.api().replicationPromote(this.host.handle, options);
  }

  /** This primary's sessions end and it becomes a secondary (to serve the promoted side). */
  async demote(): Promise<VolumeReplicationStatus> {
    return this.host.api().replicationDemote(this.host.handle);
  }
}
