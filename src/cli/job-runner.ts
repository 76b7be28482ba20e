import { StrataError } from '../errors.js';
import { consolidate, type ConsolidateRequest, type Direction } from '../jobs/consolidate.js';
import { isNoControlSocket, requestControl, type ControlRequest } from '../jobs/control.js';
import type { Job, JobInfo } from '../jobs/job.js';
import type { Context } from './command.js';
import type { Progress } from './progress.js';
import { BASE_SNAPSHOT, JOURNAL_REQUIREMENT } from '../journal/index.js';
import { openVolume } from './target.js';

/** Draws a job's progress events as a bar on stderr (created once the total is known). */
export function jobBar(ctx: Context, label: string): { update(info: JobInfo): void; finish(): void } {
  let bar: Progress | null = null;
  return {
    update(info) {
      if (!bar && info.progress.total > 0) bar = ctx.progress(label, info.progress.total);
      bar?.update(info.progress.done);
    },
    finish() {
      bar?.finish();
    },
  };
}

/** Wait for a local job, drawing its progress and cancelling it on Ctrl-C. */
export async function followJob(ctx: Context, job: Job, label: string): Promise<JobInfo> {
  const bar = jobBar(ctx, label);
  const off = job.on((e) => bar.update(e.info));
  const onAbort = () => job.cancel();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    await job.done;
    return job.info();
  } finally {
    off();
    ctx.signal.removeEventListener('abort', onAbort);
    bar.finish();
  }
}

/**
 * Consolidate in `dir`: in this process when the volume can be opened for writing, otherwise
 * through the control socket of the process holding it (online, while it serves I/O).
 */
export async function runConsolidation(ctx: Context, dir: string, req: ConsolidateRequest, direction: 'auto' | Direction = 'auto'): Promise<{ where: 'here' | 'remote'; info: JobInfo }> {
  await refuseDroppingLogBase(dir, req);
  let v;
  try {
    v = await openVolume(dir, false);
  } catch (e) {
    if (!(e instanceof StrataError && e.code === 'locked')) throw e;
    const remote: ControlRequest = req.op === 'delete-snapshot' ? { op: 'delete-snapshot', name: req.name, direction } : { op: 'commit', dropSnapshot: req.op === 'commit' && req.dropSnapshot === true };
    return { where: 'remote', info: await runRemote(ctx, dir, remote, 'consolidate', e) };
  }
  try {
    const job = consolidate(v, req, { direction, signal: ctx.signal });
    return { where: 'here', info: await followJob(ctx, job, 'consolidate') };
  } finally {
    await v.close();
  }
}

/**
 * Run a job in the process that holds `dir` open (its control socket), drawing its progress.
 * `locked` is the error that sent us there: re-thrown, with a hint, when nothing listens.
 */
export async function runRemote(ctx: Context, dir: string, req: ControlRequest, label: string, locked: StrataError): Promise<JobInfo> {
  const bar = jobBar(ctx, label);
  try {
    const last = await requestControl(dir, req, (m) => m.type === 'progress' && bar.update(m.info), ctx.signal);
    if (last.type !== 'end') throw new StrataError('io', `Unexpected answer from the process serving ${dir}.`);
    return last.info;
  } catch (r) {
    if (isNoControlSocket(r)) {
      throw new StrataError('locked', `${locked.message} It offers no control socket, so the job cannot run there; \`stratadisk serve-nbd\` does.`, { cause: locked });
    }
    throw r;
  } finally {
    bar.finish();
  }
}

/**
 * The snapshot journal.base is what every point of a write log reads through: deleting it (or
 * committing with --drop-snapshot, which may delete it) would leave a log no point can be read
 * from, and a volume no writer can open. Checked read-only, so also while a server holds it.
 */
async function refuseDroppingLogBase(dir: string, req: ConsolidateRequest): Promise<void> {
  const drops = (req.op === 'delete-snapshot' && req.name === BASE_SNAPSHOT) || (req.op === 'commit' && req.dropSnapshot === true);
  if (!drops) return;
  const v = await openVolume(dir, true);
  try {
    if (!v.requirements().some((r) => r.name === JOURNAL_REQUIREMENT) || !v.snapshots().some((s) => s.name === BASE_SNAPSHOT)) return;
  } finally {
    await v.close();
  }
  throw new StrataError('invalid-argument', `${req.op === 'commit' ? 'commit --drop-snapshot could delete' : 'Deleting'} snapshot ${BASE_SNAPSHOT} of ${dir}, the base of its write log: no point of the log could be read after. Stop the log first (\`stratadisk journal disable ${dir}\`).`);
}
