import type { ChainData, ChainLayer } from './chain-layer.js';
import { verifyRun, type LayerChecksums, type VerifyMode } from './verify.js';

/**
 * Reads one run of a layer's blocks (consecutive slots) into part of a caller's buffer, checked
 * against the layer's stored block checksums as `verify` says (src/volume/verify.ts). The chain
 * and the copy-on-read cache read through it, so no read path skips the check.
 */
export class RunReader {
  constructor(
    readonly blockSize: number,
    readonly verify: VerifyMode,
    /** names the volume in errors */
    readonly label: string,
  ) {}

  /**
   * Read bytes [from, to) of the volume, held by `layer` in blocks [b, e) at consecutive slots
   * from `s`, into target (target[0] is volume byte `offset`): pushes the reads on `ios`. With
   * checksums, whole blocks are read in place and verified when the read completes; a partial
   * block is read whole into its own buffer and verified, unless it was verified before (mode
   * 'on'), then only its part is read.
   */
  read(layer: ChainLayer, s: number, b: number, e: number, from: number, to: number, offset: number, target: Uint8Array, ios: Promise<void>[]): void {
    const bs = this.blockSize;
    const verified = layer.verified;
    if (this.verify === 'off' || verified === undefined) {
      const [wb, we] = wholeBlocks(b, e, from, to, bs);
      if (we - wb > 1 && piecesFor(layer.data, we - wb, bs) > 1) {
        // Long unverified runs are read in the same pieces as verified ones, so that 'off' (for
        // benchmarks) differs from 'on' by the hashing alone, not by how the reads are issued.
        if (from < wb * bs) ios.push(layer.data.readInto(s * bs + (from - b * bs), target.subarray(from - offset, wb * bs - offset)));
        ios.push(this.readWhole(layer, (s + wb - b) * bs, wb, we - wb, target.subarray(wb * bs - offset, we * bs - offset), false));
        if (we * bs < to) ios.push(layer.data.readInto((s + we - b) * bs, target.subarray(we * bs - offset, to - offset)));
      } else ios.push(layer.data.readInto(s * bs + (from - b * bs), target.subarray(from - offset, to - offset)));
      return;
    }
    const [wb, we] = wholeBlocks(b, e, from, to, bs);
    if (we > wb) ios.push(this.readWhole(layer, (s + wb - b) * bs, wb, we - wb, target.subarray(wb * bs - offset, we * bs - offset), true));
    const partial = (p: number) => {
      const pFrom = Math.max(from, p * bs);
      const pTo = Math.min(to, (p + 1) * bs);
      const slotAt = (s + p - b) * bs;
      if (this.verify === 'on' && verified.test(p)) {
        ios.push(layer.data.readInto(slotAt + (pFrom - p * bs), target.subarray(pFrom - offset, pTo - offset)));
        return;
      }
      const whole = new Uint8Array(bs);
      ios.push(
        layer.data.readInto(slotAt, whole).then(() => {
          verifyRun(this.label, layer as LayerChecksums, p, 1, whole, bs);
          target.set(whole.subarray(pFrom - p * bs, pTo - p * bs), pFrom - offset);
        }),
      );
    };
    if (wb > b) partial(b);
    if (we < e && e - 1 >= wb) partial(e - 1);
  }

  /**
   * Read `count` whole blocks of `layer` from byte `at` of its data into `view` and verify them.
   * A long run whose read runs in the background anyway (see piecesFor) is read in pieces, all
   * in flight together, and each piece is hashed as soon as it has landed, in order, while later
   * pieces are still being read: the hashing overlaps the reading. Every byte is still checked
   * after it was read in this call. A mismatch (or a failed read) rejects only once every piece
   * has settled, so nothing writes into `view` after the promise is done.
   */
  private readWhole(layer: ChainLayer, at: number, first: number, count: number, view: Uint8Array, verify: boolean): Promise<void> {
    const bs = this.blockSize;
    const data = layer.data;
    const pieces = piecesFor(data, count, bs);
    if (pieces <= 1) return verify ? data.readInto(at, view).then(() => verifyRun(this.label, layer as LayerChecksums, first, count, view, bs)) : data.readInto(at, view);
    const bounds: number[] = [];
    const reads: Promise<void>[] = [];
    for (let i = 0; i <= pieces; i++) bounds.push(Math.floor((i * count) / pieces));
    for (let i = 0; i < pieces; i++) {
      const read = data.readInto(at + bounds[i]! * bs, view.subarray(bounds[i]! * bs, bounds[i + 1]! * bs));
      // Observed now, awaited in order below: a piece that fails before its turn is no unhandled rejection.
      read.catch(() => {});
      reads.push(read);
    }
    return (async () => {
      try {
        for (let i = 0; i < pieces; i++) {
          await reads[i];
          if (!verify) continue;
          const k = bounds[i]!, n = bounds[i + 1]! - k;
          // (a view detached meanwhile has length 0: verifyRun refuses it rather than subarray throwing a TypeError)
          verifyRun(this.label, layer as LayerChecksums, first + k, n, view.length === count * bs ? view.subarray(k * bs, (k + n) * bs) : view, bs);
        }
      } catch (e) {
        await Promise.allSettled(reads);
        throw e;
      }
    })();
  }

  /** read without a promise: false when a store declines to read synchronously. */
  readNow(layer: ChainLayer, s: number, b: number, e: number, from: number, to: number, offset: number, target: Uint8Array): boolean {
    const data = layer.data;
    if (data.readIntoNow === undefined) return false;
    const bs = this.blockSize;
    const verified = layer.verified;
    if (this.verify === 'off' || verified === undefined) return data.readIntoNow(s * bs + (from - b * bs), target.subarray(from - offset, to - offset));
    const [wb, we] = wholeBlocks(b, e, from, to, bs);
    if (we > wb) {
      const view = target.subarray(wb * bs - offset, we * bs - offset);
      if (!data.readIntoNow((s + wb - b) * bs, view)) return false;
      verifyRun(this.label, layer as LayerChecksums, wb, we - wb, view, bs);
    }
    const partial = (p: number): boolean => {
      const pFrom = Math.max(from, p * bs);
      const pTo = Math.min(to, (p + 1) * bs);
      const slotAt = (s + p - b) * bs;
      if (this.verify === 'on' && verified.test(p)) return data.readIntoNow!(slotAt + (pFrom - p * bs), target.subarray(pFrom - offset, pTo - offset));
      const whole = (this.nowScratch ??= new Uint8Array(bs));
      if (!data.readIntoNow!(slotAt, whole)) return false;
      verifyRun(this.label, layer as LayerChecksums, p, 1, whole, bs);
      target.set(whole.subarray(pFrom - p * bs, pTo - p * bs), pFrom - offset);
      return true;
    };
    if (wb > b && !partial(b)) return false;
    if (we < e && e - 1 >= wb && !partial(e - 1)) return false;
    return true;
  }

  /** one block of scratch for synchronous partial reads (nothing else runs meanwhile) */
  private nowScratch: Uint8Array | null = null;
}

/**
 * Smallest piece of a verified run read in pieces: a 64 KiB-block run of 4 MiB is 4 pieces.
 * Smaller pieces overlap more of the hashing with the reading, but each is a thread-pool round
 * trip (tens of microseconds), and a piece of 1 MiB takes ~0.1 ms to read from the page cache.
 */
export const PIECE_MIN_BYTES = 1024 * 1024;

/**
 * Into how many pieces to read a verified run of `count` blocks from `data` (1: whole). Only
 * stores that say how they do I/O (ChainData.io) are read in pieces, and only where every piece
 * runs in the background as the whole run would: with 'sync' io, a run (and each piece) must
 * exceed syncMaxBytes, so reads that are blocking calls today stay one blocking call.
 */
export function piecesFor(data: ChainData, count: number, bs: number): number {
  let min: number;
  if (data.io === 'async') min = PIECE_MIN_BYTES;
  else if (data.io === 'sync' && typeof data.syncMaxBytes === 'number' && count * bs > data.syncMaxBytes) min = Math.max(PIECE_MIN_BYTES, data.syncMaxBytes + 1);
  else return 1;
  return Math.max(1, Math.floor(count / Math.ceil(min / bs)));
}

/**
 * The blocks of [b, e) that [from, to) covers whole, as [wb, we) (empty when we <= wb). The
 * partial blocks are b (when wb > b) and e - 1 (when we < e), possibly the same block.
 */
function wholeBlocks(b: number, e: number, from: number, to: number, bs: number): [number, number] {
  const wb = from > b * bs ? b + 1 : b;
  const we = to < e * bs ? e - 1 : e;
  return [wb, Math.max(wb, we)];
}
