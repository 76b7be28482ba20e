import { StrataError } from '../errors.js';
import type { Extent } from '../volume/map.js';
import type { VolumeReader } from '../volume/volume-reader.js';
import { FLAG_WHOLE, FLAG_ZERO, type BlockHistory, type PieceRef } from './block-history.js';
import type { WriteLog } from './write-log.js';

/**
 * A read-only view of the volume at log seq `at`: each block is its last whole piece at or
 * before `at` (or the base snapshot's block) with the partial pieces after it applied. Every
 * piece read is checked against its XXH3-128 (`checksum-mismatch` names the record). Blocks
 * the log never touched before `at` are read from the base, coalesced into runs.
 */
export function journalView(opts: { at: number; base: VolumeReader; history: BlockHistory; log: WriteLog; label: string; assertOpen: () => void }): VolumeReader {
  const { at, base, history, log, label } = opts;
  const bs = base.blockSize;
  const size = base.size;
  const view: VolumeReader = {
    size,
    blockSize: bs,
    async read(offset: number, length: number) {
      const t = new Uint8Array(length);
      await view.readInto(offset, t);
      return t;
    },
    async readInto(offset: number, target: Uint8Array) {
      opts.assertOpen();
      if (!Number.isSafeInteger(offset) || offset < 0 || offset + target.length > size) {
        throw new StrataError('out-of-range', `The range ${offset}+${target.length} is past the end of the view (${size} bytes).`);
      }
      const end = offset + target.length;
      let block = Math.floor(offset / bs);
      // a run of blocks the log leaves to the base: [runFrom, at) in bytes
      let runFrom = -1;
      const flushBase = async (to: number): Promise<void> => {
        if (runFrom < 0) return;
        await base.readInto(runFrom, target.subarray(runFrom - offset, to - offset));
        runFrom = -1;
      };
      let scratch: Uint8Array | null = null;
      for (; block * bs < end; block++) {
        const bStart = block * bs;
        const from = Math.max(offset, bStart);
        const to = Math.min(end, bStart + bs, size);
        const pieces = history.piecesAt(block, at);
        if (pieces.length === 0) {
          if (runFrom < 0) runFrom = from;
          continue;
        }
        await flushBase(from);
        scratch ??= new Uint8Array(bs);
        const blockLen = Math.min(bs, size - bStart);
        const b = scratch.subarray(0, blockLen);
        await composeBlock(block, pieces, b);
        target.set(b.subarray(from - bStart, to - bStart), from - offset);
      }
      await flushBase(end);
    },
    async map(offset?: number, length?: number): Promise<Extent[]> {
      opts.assertOpen();
      const from = offset ?? 0;
      const to = length === undefined ? size : from + length;
      const under = await base.map(from, to - from);
      // blocks the log decides at `at`: data, or zero when their last whole piece is zero and nothing follows
      const decided = new Map<number, boolean>();
      for (const b of history.allBlocks()) {
        if (b * bs >= to || (b + 1) * bs <= from) continue;
        const p = history.piecesAt(b, at);
        if (p.length === 0) continue;
        decided.set(b, p.length === 1 && (p[0]!.flags & FLAG_ZERO) !== 0 && (p[0]!.flags & FLAG_WHOLE) !== 0);
      }
      if (decided.size === 0) return under;
      return overlay(under, decided, bs, to);
    },
  };

  async function composeBlock(block: number, pieces: PieceRef[], b: Uint8Array): Promise<void> {
    const first = pieces[0]!;
    if (!(first.flags & FLAG_WHOLE)) await base.readInto(block * bs, b);
    for (const p of pieces) {
      const part = b.subarray(p.start, p.start + p.length);
      if (p.flags & FLAG_ZERO) {
        part.fill(0);
        continue;
      }
      if (!(await log.readChecked(p.segment, p.pos, part, p.hash))) {
        throw new StrataError('checksum-mismatch', `${label}: record ${p.seq} of the write log (block ${block}, ${p.length} bytes) does not match its checksum: the log is damaged there. Points before record ${p.seq} still read correctly; restore the log from a copy, or drop it (\`stratadisk journal disable DIR --force\`) and enable a new one.`);
      }
    }
  }
  return view;
}

/** `under` (the base's extents of [from, to)) with the log's blocks laid over it (depth 0: the log). */
function overlay(under: Extent[], decided: Map<number, boolean>, bs: number, to: number): Extent[] {
  const out: Extent[] = [];
  const push = (e: Extent): void => {
    if (e.length <= 0) return;
    const last = out[out.length - 1];
    if (last && last.depth === e.depth && last.present === e.present && last.zero === e.zero && last.data === e.data && last.layer === e.layer && last.start + last.length === e.start) last.length += e.length;
    else out.push(e);
  };
  for (const e of under) {
    let at = e.start;
    const end = e.start + e.length;
    while (at < end) {
      const block = Math.floor(at / bs);
      const bEnd = Math.min(end, (block + 1) * bs, to);
      const zero = decided.get(block);
      if (zero === undefined) push({ ...e, start: at, length: bEnd - at });
      else push({ start: at, length: bEnd - at, depth: 0, present: true, zero, data: !zero, layer: 'journal' });
      at = bEnd;
    }
  }
  return out;
}
