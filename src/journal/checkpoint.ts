import { StrataError } from '../errors.js';
import { hashSegments128 } from '../wasm/index.js';
import type { Volume } from '../volume/volume.js';
import type { VolumeReader } from '../volume/volume-reader.js';
import type { Point } from './points.js';
import { KIND_FOLD, encodeWrite, type Piece } from './record.js';
import type { WriteLog } from './write-log.js';

/** What a fold needs of a write log's journal (journal.ts implements it; no import back). */
export interface FoldTarget {
  readonly volume: Volume;
  readonly log: WriteLog;
  readonly oldest: number;
  assertWritable(): void;
  resolve(point: string | Point): number;
  view(point: string | Point): VolumeReader;
  blocksChanged(after: number, upTo?: number): number[];
  recordsBetween(after: number, upTo: number): { seq: number; time: number }[];
  status(): { lastFlush: number };
  switchToFold(c: number, pieces: { piece: Piece; pos: number }[]): void;
  checkQuota(): void;
}

/**
 * Checkpoints and retention: fold the oldest part of the write log into its base and delete it.
 * The fold store (`journal.fold-<C>.log`) holds, for every block the log touched up to point C,
 * the block as it was at C; with the base snapshot below it, it reads exactly as the view at C
 * did, and every later point reads as before (its pieces after C are kept). Points before C are
 * gone. A log is cut only at segment boundaries (a segment is rolled at 64 MiB), so C is the end
 * of a segment: the last one ending at or before the point asked for.
 *
 * Crash safe: the fold store is written and synced completely (ending with a FLUSH of seq C)
 * before any segment is deleted; an incomplete fold store is ignored and removed at open, and
 * segments a completed fold covers are removed then if a crash kept them.
 */
export interface FoldReport {
  /** the point folded to (the oldest point kept now); null when nothing could be folded */
  c: number | null;
  blocks: number;
  /** log bytes before and after */
  bytesBefore: number;
  bytesAfter: number;
  /** why nothing was folded */
  reason?: string;
}

const EMPTY = new Uint8Array(16);

/** Largest data one fold record carries. */
const RECORD_DATA = 8 << 20;

export async function foldLog(journal: FoldTarget, upTo: string | Point, options: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {}): Promise<FoldReport> {
  journal.assertWritable();
  const want = journal.resolve(upTo);
  const log = journal.log;
  const bytesBefore = log.bytes;
  const segs = log.segmentList();
  // the last segment boundary at or before the point: segment i ends at segs[i+1].first - 1
  let c: number | null = null;
  for (let i = 0; i + 1 < segs.length; i++) {
    const end = segs[i + 1]!.first - 1;
    if (end <= want && end > journal.oldest) c = end;
  }
  if (c === null) {
    return { c: null, blocks: 0, bytesBefore, bytesAfter: bytesBefore, reason: segs.length < 2 ? 'the log has one segment (a segment is closed at 64 MiB); nothing before it can be dropped' : `no segment ends at or before seq:${want}` };
  }
  const at = c;
  const view = journal.view({ seq: at });
  const blocks = journal.blocksChanged(-1, at);
  const vol = journal.volume;
  const bs = vol.blockSize;
  const placed: { piece: Piece; pos: number }[] = [];
  await log.writeFold(
    at,
    async (append) => {
      const per = Math.max(1, Math.floor(RECORD_DATA / bs));
      const buf = new Uint8Array(per * bs);
      for (let i = 0; i < blocks.length; i += per) {
        if (options.signal?.aborted) throw new StrataError('aborted', 'The checkpoint was cancelled; the log is as it was.');
        const batch = blocks.slice(i, i + per);
        const pieces: Piece[] = [];
        let used = 0;
        for (const b of batch) {
          const len = Math.min(bs, vol.size - b * bs);
          await view.readInto(b * bs, buf.subarray(used, used + len));
          pieces.push({ offset: b * bs, length: len, whole: true, hash: EMPTY });
          used += len;
        }
        // the batch's hashes in one kernel call (every block whole; only the volume's last may be short)
        const hashes = hashSegments128(buf.subarray(0, used), bs);
        pieces.forEach((p, k) => (p.hash = hashes.subarray(k * 16, k * 16 + 16)));
        const { bytes, dataAt } = encodeWrite(KIND_FOLD, at, Date.now(), pieces);
        bytes.set(buf.subarray(0, used), dataAt);
        const start = await append(bytes);
        let pos = start + dataAt;
        for (const p of pieces) {
          placed.push({ piece: p, pos });
          pos += p.length;
        }
        options.onProgress?.(Math.min(i + per, blocks.length), blocks.length);
      }
    },
    () => journal.switchToFold(at, placed),
  );
  // under the limit again? (a `refuse` policy lets writes in; a `fold` one may fold further)
  queueMicrotask(() => journal.checkQuota());
  return { c: at, blocks: blocks.length, bytesBefore, bytesAfter: log.bytes };
}

/**
 * The point a retention policy folds to: keep the newest `keepBytes` of log (whole segments), or
 * the records of the last `keepMs` milliseconds. null: nothing to fold.
 */
export function retentionPoint(journal: FoldTarget, policy: { keepBytes?: number; keepMs?: number; now?: number }): number | null {
  const segs = journal.log.segmentList();
  let c: number | null = null;
  if (policy.keepBytes !== undefined) {
    // drop oldest segments while what stays is still over the budget
    let total = segs.reduce((n, s) => n + s.bytes, 0);
    for (let i = 0; i + 1 < segs.length && total > policy.keepBytes; i++) {
      total -= segs[i]!.bytes;
      c = segs[i + 1]!.first - 1;
    }
  }
  if (policy.keepMs !== undefined) {
    const limit = (policy.now ?? Date.now()) - policy.keepMs;
    const recs = journal.recordsBetween(journal.oldest, Number.MAX_SAFE_INTEGER);
    let last: number | null = null;
    for (const r of recs) if (r.time <= limit) last = r.seq;
    if (last !== null) c = Math.max(c ?? -1, Math.min(last, journal.status().lastFlush));
  }
  return c;
}
