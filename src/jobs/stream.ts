import { StrataError } from '../errors.js';
import type { Volume } from '../volume/volume.js';
import { BaseJob, type JobOptions } from './job.js';

export interface StreamJobOptions extends JobOptions {
  /** Bytes of the image fetched per batch (default 1 MiB): the unit of progress, pause and rate limit. */
  batchBytes?: number;
  /** Make fetched blocks durable after this many bytes (default 64 MiB) and at the end. */
  flushBytes?: number;
}

/**
 * Fetch every block of a copy-on-read volume's image that is not local yet, in the background,
 * so that the volume then works offline. Runs while the volume is in use (each batch holds the
 * volume's read lock; reads and writes interleave between batches), rate-limited and pausable
 * like every job. Interrupted (cancel, crash), it loses nothing: blocks already fetched stay
 * in the cache, and a new stream job fetches only the rest.
 */
export class StreamJob extends BaseJob {
  private readonly batchBytes: number;
  private readonly flushBytes: number;
  private readonly totalBytes: number;

  constructor(
    private readonly volume: Volume,
    options: StreamJobOptions = {},
  ) {
    super('stream', options);
    if (!volume.remote) throw new StrataError('unsupported', 'This volume has no remote image to stream; only volumes created from an image URL (--backing) have one.');
    if (volume.readOnly) throw new StrataError('read-only', 'Cannot stream into a volume opened read-only.');
    this.batchBytes = Math.max(volume.blockSize, options.batchBytes ?? 1 << 20);
    this.flushBytes = options.flushBytes ?? 64 << 20;
    this.totalBytes = volume.remote.missingBytes();
    this.setTotal(this.totalBytes);
  }

  protected async run(): Promise<void> {
    const remote = this.volume.remote!;
    const bs = this.volume.blockSize;
    const perBatch = Math.max(1, Math.floor(this.batchBytes / bs));
    const blocks = Math.ceil(remote.record.size / bs);
    let sinceFlush = 0;
    await this.checkpoint();
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
    } finally {
      if (sinceFlush > 0) await remote.flushNow().catch(() => {});
    }
  }
}

/** Start a stream job on `volume` (see {@link StreamJob}). */
export function streamVolume(volume: Volume, options: StreamJobOptions = {}): StreamJob {
  return new StreamJob(volume, options).start();
}
