import { StrataError } from '../errors.js';

/**
 * Pages of a block bitmap as the replication bitmaps keep them in memory and on their store
 * (src/replication/out-of-sync.ts): 2^15 bits (4 KiB) per page, a page allocated on its first set
 * bit, so a 1 TiB volume at 4 KiB blocks costs nothing until blocks go out of sync.
 *
 * These are plain typed arrays in JS, not the WASM SparseBitmap (src/wasm/bitmap.ts): the
 * replication bitmaps must know which pages changed since they were last persisted, copy a page's
 * bytes into a record, keep a page "all set" without allocating it (markAll on 1 TiB) and count
 * bits as they flip (dirtyBlocks in O(1)); the hot calls touch one or two words, where a call
 * into WASM would cost more than the work.
 */
export const PAGE_SHIFT = 15;
export const PAGE_BITS = 1 << PAGE_SHIFT;
export const PAGE_WORDS = PAGE_BITS >>> 5;
export const PAGE_BYTES = PAGE_BITS >>> 3;
/** The largest number of blocks a replication bitmap covers (u32 block indices on the store). */
export const MAX_BLOCKS = 2 ** 32;

export interface Geometry {
  /** the volume's size in bytes */
  readonly size: number;
  /** the volume's block size in bytes, a power of two from 512 B to 1 MiB */
  readonly blockSize: number;
}

/** Checks a volume geometry and returns its number of blocks. */
export function blocksOf(geometry: Geometry, what: string): number {
  const { size, blockSize } = geometry ?? ({} as Geometry);
  if (!Number.isSafeInteger(size) || size < 0) throw new StrataError('invalid-argument', `${what}: the volume size ${String(size)} is not a byte count.`);
  if (!Number.isSafeInteger(blockSize) || blockSize < 512 || blockSize > 2 ** 20 || (blockSize & (blockSize - 1)) !== 0) {
    throw new StrataError('invalid-argument', `${what}: the block size ${String(blockSize)} is not a power of two from 512 B to 1 MiB.`);
  }
  const blocks = Math.ceil(size / blockSize);
  if (blocks > MAX_BLOCKS) throw new StrataError('unsupported', `${what}: a volume of ${blocks} blocks is more than ${MAX_BLOCKS}; use a larger block size.`);
  return blocks;
}

/** Checks flat [first, count]* block runs against a volume of `blocks` blocks. */
export function checkRuns(runs: readonly number[], blocks: number, what: string): void {
  if (runs.length % 2 !== 0) throw new StrataError('invalid-argument', `${what}: runs are flat [firstBlock, count] pairs; got ${runs.length} numbers.`);
  for (let i = 0; i < runs.length; i += 2) {
    const first = runs[i]!, count = runs[i + 1]!;
    if (!Number.isSafeInteger(first) || first < 0 || !Number.isSafeInteger(count) || count < 0 || first + count > blocks) {
      throw new StrataError('out-of-range', `${what}: the run of ${String(count)} blocks at block ${String(first)} is not within the volume's ${blocks} blocks.`);
    }
  }
}

export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Mask of bits [lo, hi) of a word, 0 <= lo < hi <= 32. */
function mask(lo: number, hi: number): number {
  return (hi === 32 ? 0xffffffff : ((1 << hi) - 1)) & ~((1 << lo) - 1);
}

/** Sets bits [from, to) of a page; returns how many were clear before. */
export function setBits(w: Uint32Array, from: number, to: number): number {
  let added = 0;
  while (from < to) {
    const i = from >>> 5, lo = from & 31, hi = Math.min(32, to - (i << 5));
    const m = mask(lo, hi), old = w[i]!;
    if ((old & m) !== m) {
      added += popcount32(m & ~old);
      w[i] = old | m;
    }
    from = (i << 5) + hi;
  }
  return added;
}

/** Clears bits [from, to) of a page; returns how many were set before. */
export function clearBits(w: Uint32Array, from: number, to: number): number {
  let removed = 0;
  while (from < to) {
    const i = from >>> 5, lo = from & 31, hi = Math.min(32, to - (i << 5));
    const m = mask(lo, hi), old = w[i]!;
    if ((old & m) !== 0) {
      removed += popcount32(m & old);
      w[i] = old & ~m;
    }
    from = (i << 5) + hi;
  }
  return removed;
}

export function testBit(w: Uint32Array, bit: number): boolean {
  return ((w[bit >>> 5]! >>> (bit & 31)) & 1) === 1;
}

/** First set bit in [from, to), or -1. */
export function nextSet(w: Uint32Array, from: number, to: number): number {
  while (from < to) {
    const i = from >>> 5;
    const word = w[i]! & ~((1 << (from & 31)) - 1);
    if (word !== 0) {
      const b = (i << 5) + (31 - Math.clz32(word & -word));
      return b < to ? b : -1;
    }
    from = (i + 1) << 5;
  }
  return -1;
}

/** First clear bit in [from, to), or `to`. */
export function nextClear(w: Uint32Array, from: number, to: number): number {
  while (from < to) {
    const i = from >>> 5;
    const word = ~w[i]! & ~((1 << (from & 31)) - 1);
    if (word !== 0) {
      const b = (i << 5) + (31 - Math.clz32(word & -word));
      return b < to ? b : to;
    }
    from = (i + 1) << 5;
  }
  return to;
}

/** Calls fn(first, count) for each run of set bits of a page, in order; stops when fn returns false. */
export function eachRun(w: Uint32Array, from: number, to: number, fn: (first: number, count: number) => boolean): void {
  let b = from;
  while (b < to) {
    const s = nextSet(w, b, to);
    if (s < 0) return;
    const e = nextClear(w, s, to);
    if (!fn(s, e - s)) return;
    b = e;
  }
}

/** Number of runs of set bits in a page (stops counting at `limit`). */
export function countRuns(w: Uint32Array, limit: number): number {
  let n = 0;
  eachRun(w, 0, PAGE_BITS, () => ++n < limit);
  return n;
}
