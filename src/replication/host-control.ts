/**
 * Replication requests on a primary's control socket (src/jobs/control.ts): the process that
 * holds a volume (`serve-nbd`, `replicate`) runs its replication sessions, and `stratadisk
 * replicate` / `replication status|freeze|resume` of the same user reach them here. The
 * ReplicationHost is opened on the first `replicate` request (a server that never replicates
 * never touches the role record).
 */
import { StrataError } from '../errors.js';
import type { ControlMessage, ReplicationControl, ReplicationRequest } from '../jobs/control.js';
import type { Volume } from '../volume/volume.js';
import { ReplicationHost, type HostOptions } from './node-host.js';

export interface PrimaryControl extends ReplicationControl {
  /** the host, once a session was started */
  readonly host: ReplicationHost | null;
  /** Use `host` (a `replicate` process that runs its own sessions). */
  adopt(host: ReplicationHost): void;
}

/** Answer replication requests for the volume `volume()` returns (it may change after a mirror switch-over). */
export function primaryReplicationControl(volume: () => Volume, options: HostOptions = {}): PrimaryControl {
  let host: ReplicationHost | null = null;
  let opening: Promise<ReplicationHost> | null = null;
  const getHost = async (): Promise<ReplicationHost> => {
    if (host) return host;
    opening ??= ReplicationHost.open(volume(), options).then((h) => (host = h));
    try {
      return await opening;
    } catch (e) {
      opening = null;
      throw e;
    }
  };
  return {
    get host() {
      return host;
    },
    adopt(h) {
      host = h;
    },
    pinned() {
      const n = host?.sessions.length ?? 0;
      return n > 0 ? `This volume replicates (${n} session${n === 1 ? '' : 's'}).` : null;
    },
    async handle(req: ReplicationRequest, send: (m: ControlMessage) => void, gone: AbortSignal): Promise<void> {
      switch (req.op) {
        case 'replication-status':
          send({ type: 'replication', status: host ? host.status() : null });
          return;
        case 'replication-freeze':
          if (!host || host.sessions.length === 0) throw new StrataError('not-found', 'No replication session runs in the process holding this volume; start one with `stratadisk replicate SRC DST_URL`.');
          await host.freeze();
          send({ type: 'replication', status: host.status() });
          return;
        case 'replication-resume':
          if (!host || host.sessions.length === 0) throw new StrataError('not-found', 'No replication session runs in the process holding this volume; start one with `stratadisk replicate SRC DST_URL`.');
          await host.resume();
          send({ type: 'replication', status: host.status() });
          return;
        case 'replication-promote':
          throw new StrataError('invalid-argument', 'This volume is a primary already (promote applies to a secondary).');
        case 'replicate': {
          if (typeof req.url !== 'string' || typeof req.token !== 'string') throw new StrataError('invalid-argument', 'replicate needs a URL and a token.');
          const h = await getHost();
          const session = await h.add({
            url: req.url,
            token: req.token,
            ...(req.mode === 'sync' || req.mode === 'async' ? { mode: req.mode } : {}),
            ...(typeof req.group === 'string' ? { group: req.group } : {}),
            ...(req.policy === 'run' || req.policy === 'block' ? { policy: req.policy } : {}),
            ...(typeof req.name === 'string' ? { name: req.name } : {}),
            ...(typeof req.caFile === 'string' ? { caFile: req.caFile } : {}),
          });
          send({ type: 'replication', text: `session ${session.name} connected to ${req.url}; resynchronising ${session.status().outOfSyncBytes} bytes` });
          // the requester follows the resync (a progress bar) until it is done or it hangs up; the session goes on either way
          const prev = session.hooks.onProgress;
          session.hooks.onProgress = (s, done, total) => {
            prev?.(s, done, total);
            if (!gone.aborted) send({ type: 'replication', progress: { session: s.name, done: done * h.volume.blockSize, total: total * h.volume.blockSize } });
          };
          const goneP = new Promise<void>((r) => gone.addEventListener('abort', () => r(), { once: true }));
          await Promise.race([session.synced().catch(() => {}), goneP]);
          send({ type: 'replication', status: h.status() });
          return;
        }
        default:
          throw new StrataError('unsupported', `Unknown replication request "${String((req as { op?: unknown }).op)}".`);
      }
    },
  };
}
