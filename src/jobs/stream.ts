import { StrataError } from '../errors.js';
import type { Volume } from '../volume/volume.js';
import { BaseJob, type JobOptions } from './job.js';
import { JobJournal, type JobRecord } from './job-journal.js';

export interface StreamJobOptions extends JobOptions {
  /** Bytes of the image fetched per batch (default 1 MiB): the unit of progress, pause and rate limit. */
  batchBytes?: number;
  /** Make fetched blocks durable after this many bytes (default 64 MiB) and at the end. */
  flushBytes?: number;
  /**
   * Keep a record in the volume's job journal while the job runs (default true), so that after
   * a crash or kill `stratadisk jobs DIR` lists it as interrupted and `resumeJobs` /
   * `stratadisk jobs DIR --resume` finishes it. Costs two small synced writes per job.
   */
  journal?: boolean;
}

/**
 * Fetch every block of a copy-on-read volume's image that is not local yet, in the background,
 * so that the volume then works offline. Runs while the volume is in use (each batch holds the
 * volume's read lock; reads and writes interleave between batches), rate-limited and pausable
 * like every job.
 *
 * Journaled: a record goes into the job journal before the first fetch and is removed when the
 * job completes or is cancelled (a cancel is the user's decision to stop; the volume is usable
 * either way). A crash, kill or failure leaves the record, so the job shows as interrupted and
 * is resumed by `resumeJobs`. Nothing fetched is lost: blocks already in the cache stay there, and
 * a resumed (or new) job fetches only the rest — the cache itself is the progress checkpoint.
 */
export class StreamJob extends BaseJob {
  private readonly batchBytes: number;
  private readonly flushBytes: number;
  private readonly totalBytes: number;
  private readonly useJournal: boolean;

  constructor(
    private readonly volume: Volume,
    options: StreamJobOptions = {},
  ) {
    super('stream', options);
    this.yieldTo(() => volume.foregroundOps);
    if (!volume.remote) throw new StrataError('unsupported', 'This volume has no remote image to stream; only volumes created from an image URL (--backing) have one.');
    if (volume.readOnly) throw new StrataError('read-only', 'Cannot stream into a volume opened read-only.');
    this.batchBytes = Math.max(volume.blockSize, options.batchBytes ?? 1 << 20);
    this.flushBytes = options.flushBytes ?? 64 << 20;
    this.useJournal = options.journal ?? true;
    this.totalBytes = volume.remote.missingBytes();
    this.setTotal(this.totalBytes);
  }

  /** The journal record of this job (what `stratadisk jobs DIR` shows and `resumeJobs` restarts). */
  record(): JobRecord {
    const rec = this.volume.remote!.record;
    const proc = (globalThis as { process?: { pid?: number } }).process;
    return {
      id: this.id,
      kind: this.kind,
      params: { url: rec.url, imageBytes: rec.size, rateLimit: this.info().rateLimit ?? null },
      started: new Date().toISOString(),
      pid: proc?.pid ?? null,
      host: null,
    };
  }

  protected async run(): Promise<void> {
    const journal = this.useJournal ? await JobJournal.open(this.volume.ns) : null;
    await journal?.put(this.record());
    try {
      await this.checkpoint();
      await this.fetchAll();
    } catch (e) {
      // cancelled: the user stopped it, nothing to resume; any other failure stays interrupted
      if (journal && e instanceof StrataError && e.code === 'aborted') await journal.remove(this.id).catch(() => {});
      throw e;
    }
    await journal?.remove(this.id);
  }

  private async fetchAll(): Promise<void> {
    const remote = this.volume.remote!;
    const bs = this.volume.blockSize;
    const perBatch = Math.max(1, Math.floor(this.batchBytes / bs));
    const blocks = Math.ceil(remote.record.size / bs);
    let sinceFlush = 0;
    try {
      for (let b = 0; b < blocks; ) {
        // Skip what is local already (a cheap bitmap walk), then fetch up to one batch of the rest.
        const runs = remote.missingRuns(b, blocks);
        if (runs.length === 0) break;
        const start = runs[0]!;
        const n = Math.min(perBatch, runs[1]! - start);
        const bytes = await remote.fetchBlocks(start, n);
        b = start + n;
        sinceFlush += bytes;
        if (sinceFlush >= this.flushBytes) {
          await remote.flushNow();
          sinceFlush = 0;
        }
        await this.step(Math.min(bytes, remote.record.size - start * bs));
      }
      // Reads of the volume may have fetched some blocks meanwhile: they count as done too.
      this.setDone(this.totalBytes);
      // durable before the journal record goes
      if (sinceFlush > 0) await remote.flushNow();
      sinceFlush = 0;
    } finally {
      if (sinceFlush > 0) await remote.flushNow().catch(() => {});
    }
  }
}

/** Start a stream job on `volume` (see {@link StreamJob}). */
export function streamVolume(volume: Volume, options: StreamJobOptions = {}): StreamJob {
  return new StreamJob(volume, options).start();
}
