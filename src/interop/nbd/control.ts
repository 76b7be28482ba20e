import { serveControl, type ControlOptions, type ControlServer } from '../../jobs/control.js';
import { SYNC_MAX_BYTES, type NbdServer } from './server.js';

/** How long a moved control socket waits for the mirror's own request to be answered before closing. */
const HANDOVER_MS = 5_000;

export interface NbdControl {
  /** the directory whose control socket answers now (the mirror's target after a switch-over) */
  readonly dir: string;
  /** Stop taking job requests (cancels running jobs). */
  close(): Promise<void>;
}

/**
 * Take job requests (src/jobs/control.ts) for the volume an NBD server serves from `dir`, and
 * follow a mirror job to its copy: at the switch-over the server's live export moves to the
 * copy (NbdServer.switchOver; clients stay connected), and the control socket moves with it to
 * the copy's directory, so `stratadisk jobs DST` and later jobs reach the volume now served.
 */
export async function serveNbdControl(server: NbdServer, dir: string, onError: (e: Error) => void = () => {}, extra: Pick<ControlOptions, 'replication'> = {}): Promise<NbdControl> {
  let current: ControlServer;
  let currentDir = dir;
  let closing = false;
  let moving: Promise<void> = Promise.resolve();

  const start = (d: string): Promise<ControlServer> =>
    serveControl(server.volume, d, undefined, {
      ...extra,
      targetOptions: { syncMaxBytes: SYNC_MAX_BYTES },
      onRefused: (reason) => onError(new Error(reason)),
      // Resolves once the control socket answers in the copy's directory (or will not move), so
      // the mirror's requester hears of the end only when `jobs DST` already reaches the server.
      onSwitchOver: (job, target) => {
        let moved!: () => void;
        const done = new Promise<void>((r) => (moved = r));
        const next = job.done.then(
          () => job.target,
          () => null,
        );
        moving = server.switchOver(next).then(async () => {
          if (closing || server.volume !== job.target) return moved();
          const old = current;
          try {
            current = await start(target);
            currentDir = target;
          } catch (e) {
            onError(e as Error);
            return moved();
          }
          moved();
          // The mirror's requester is still being told the job ended: let it hang up first.
          const deadline = Date.now() + HANDOVER_MS;
          while (old.connections > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          await old.close();
        });
        moving.catch(() => moved());
        return done;
      },
    });

  current = await start(dir);
  return {
    get dir() {
      return currentDir;
    },
    async close() {
      closing = true;
      await current.close();
      await moving.catch(() => {});
      await current.close();
    },
  };
}
