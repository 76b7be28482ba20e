import type { Volume } from '../volume/volume.js';
import { children, isReferenced } from '../volume/tree.js';
import { consolidate, type ConsolidateOptions } from './consolidate.js';
import type { Job } from './job.js';
import { JobJournal, type JobRecord } from './job-journal.js';
import { StreamJob } from './stream.js';

/** Layers left half-collapsed by an interrupted consolidation (or snapshot deletion): sealed, unnamed, with at most one child. */
export function pendingMerges(volume: Volume): string[] {
  const m = volume.manifest;
  return m.layers.filter((l) => l.sealed && !isReferenced(m, l.id) && children(m, l.id).length <= 1).map((l) => l.id);
}

/** Journal records of interrupted stream jobs that `resumeJobs` can restart on `volume`. */
export function resumableStreams(volume: Volume, records: readonly JobRecord[]): JobRecord[] {
  return volume.remote && !volume.readOnly ? records.filter((r) => r.kind === 'stream') : [];
}

export interface ResumeOptions extends ConsolidateOptions {
  /** sees each job as it starts (consolidations first, then streams) */
  onJob?: (job: Job) => void;
}

/**
 * Resume what interrupted jobs left on a volume opened with `deferMerges: true`: each pending
 * merge runs again as an online consolidation job (blocks already copied are skipped), then each
 * interrupted stream job runs again under its old id (blocks already local are skipped), one
 * after the other; `onJob` sees each job as it starts. Journal records of jobs that cannot resume
 * here (a mirror whose target this process does not have) are dropped: their partial output is
 * abandoned, the volume itself was never changed by them. Returns the dropped records.
 * A resumed job that fails or is cancelled throws; its record then stays (or goes, for a cancel).
 */
export async function resumeJobs(volume: Volume, options: ResumeOptions = {}): Promise<JobRecord[]> {
  for (;;) {
    const lower = pendingMerges(volume)[0];
    if (lower === undefined) break;
    const job = consolidate(volume, { op: 'resume', lower }, options);
    options.onJob?.(job);
    await job.done;
  }
  const journal = await JobJournal.open(volume.ns);
  const streams = resumableStreams(volume, journal.records());
  const dropped = journal.records().filter((r) => !streams.some((s) => s.id === r.id));
  for (const r of dropped) await journal.remove(r.id);
  for (const r of streams) {
    const rate = typeof r.params.rateLimit === 'number' && r.params.rateLimit > 0 ? r.params.rateLimit : undefined;
    const job = new StreamJob(volume, { id: r.id, signal: options.signal, rateLimit: options.rateLimit ?? rate, foreground: options.foreground, minShare: options.minShare });
    options.onJob?.(job);
    job.start();
    await job.done;
  }
  return dropped;
}
