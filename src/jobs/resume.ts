import type { Volume } from '../volume/volume.js';
import { children, isReferenced } from '../volume/tree.js';
import { consolidate, type ConsolidateJob, type ConsolidateOptions } from './consolidate.js';
import { JobJournal, type JobRecord } from './job-journal.js';

/** Layers left half-collapsed by an interrupted consolidation (or snapshot deletion): sealed, unnamed, with at most one child. */
export function pendingMerges(volume: Volume): string[] {
  const m = volume.manifest;
  return m.layers.filter((l) => l.sealed && !isReferenced(m, l.id) && children(m, l.id).length <= 1).map((l) => l.id);
}

/**
 * Resume what interrupted jobs left on a volume opened with `deferMerges: true`: each pending
 * merge runs again as an online consolidation job (blocks already copied are skipped), one after
 * the other; `onJob` sees each job as it starts. Journal records of jobs that cannot resume here
 * (a mirror whose target this process does not have) are dropped: their partial output is
 * abandoned, the volume itself was never changed by them. Returns the dropped records.
 */
export async function resumeJobs(volume: Volume, options: ConsolidateOptions & { onJob?: (job: ConsolidateJob) => void } = {}): Promise<JobRecord[]> {
  for (;;) {
    const lower = pendingMerges(volume)[0];
    if (lower === undefined) break;
    const job = consolidate(volume, { op: 'resume', lower }, options);
    options.onJob?.(job);
    await job.done;
  }
  const journal = await JobJournal.open(volume.ns);
  const dropped = journal.records();
  for (const r of dropped) await journal.remove(r.id);
  return dropped;
}
