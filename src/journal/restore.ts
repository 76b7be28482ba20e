import { StrataError } from '../errors.js';
import type { Journal } from './journal.js';
import { BASE_SEQ, type Point } from './points.js';

export interface RestoreReport {
  /** the log seq restored to */
  to: number;
  /** blocks rewritten (those changed after the point) */
  blocks: number;
  bytes: number;
  /** the mark set before restoring: restore to it to undo this restore */
  undo: string;
}

/** Largest run of blocks read from the view and written back at once. */
const BATCH_BYTES = 8 << 20;

/**
 * Roll the live volume back (or forward) to a point of its write log: every block changed after
 * the point is rewritten with its content at the point, through the volume's own write path, so
 * the restore is logged like any write and can itself be undone (to the `before-restore-…` mark
 * set first). Costs time in proportion to the blocks changed since the point, not to the volume.
 * Only marks are allowed without `force` (a point inside a transaction may be inconsistent).
 * Crash safe: an interrupted restore leaves the volume at a mix that the log records; run it
 * again (it is idempotent) or restore to the undo mark.
 */
export async function restoreTo(journal: Journal, point: string | Point, options: { force?: boolean; onProgress?: (done: number, total: number) => void; signal?: AbortSignal } = {}): Promise<RestoreReport> {
  journal.assertWritable();
  const to = journal.resolve(point);
  if (!options.force && !journal.isMarked(to)) {
    const what = to === BASE_SEQ ? 'The base of the log' : `Record ${to}`;
    throw new StrataError('invalid-argument', `${what} is not a mark: the volume may have been inside a transaction there. Restore to a mark (\`stratadisk marks DIR\`), or add --force.`);
  }
  const undo = `before-restore-${new Date().toISOString()}`;
  const before = await journal.mark(undo);
  const view = journal.view({ seq: to });
  const blocks = journal.blocksChanged(to, before.point);
  const vol = journal.volume;
  const bs = vol.blockSize;
  const perBatch = Math.max(1, Math.floor(BATCH_BYTES / bs));
  let buf = new Uint8Array(0);
  let bytes = 0;
  for (let i = 0; i < blocks.length; ) {
    if (options.signal?.aborted) throw new StrataError('aborted', `The restore was cancelled after ${i} of ${blocks.length} blocks; the volume is part way. Run it again, or restore to mark "${undo}".`);
    // a run of consecutive blocks, at most perBatch long
    let j = i + 1;
    while (j < blocks.length && j - i < perBatch && blocks[j] === blocks[j - 1]! + 1) j++;
    const from = blocks[i]! * bs;
    const len = Math.min(blocks[j - 1]! * bs + bs, vol.size) - from;
    if (buf.length < len) buf = new Uint8Array(len);
    const part = buf.subarray(0, len);
    await view.readInto(from, part);
    await vol.write(from, part);
    bytes += len;
    i = j;
    options.onProgress?.(i, blocks.length);
  }
  await journal.mark(`restored-to-${to}`);
  return { to, blocks: blocks.length, bytes, undo };
}
