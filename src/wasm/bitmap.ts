/**
 * Sparse bitmaps over block indices 0 .. 2^32-1, with pages of 2^16 bits (8 KiB) in WASM memory
 * allocated on the first set bit, and `resolve` (which layer owns each block) over a stack of them.
 */
import { StrataError } from '../errors.js';
import { allocatePage, checkInt, freePage, kernels, PAGE_BYTES, scratch, words16, words32, bytes } from './kernels.js';

const PAGE_SHIFT = 16;
const PAGE_BITS = 1 << PAGE_SHIFT;
/** One past the largest block index. */
export const BITMAP_LIMIT = 2 ** 32;
/** Owner value for "no layer has this block". */
export const NO_OWNER = 0xFFFF;
/** At most this many layers can be resolved (0xFFFF is reserved for "none"). */
export const MAX_LAYERS = 0xFFFF;

const reclaim = new FinalizationRegistry<Map<number, number>>((pages) => {
  for (const ptr of pages.values()) freePage(ptr);
});

function checkRange(start: number, count: number): void {
  checkInt('start', start, 0, BITMAP_LIMIT);
  checkInt('count', count, 0, BITMAP_LIMIT);
  if (start + count > BITMAP_LIMIT) throw new StrataError('out-of-range', `range [${start}, ${start + count}) goes past the last block index ${BITMAP_LIMIT - 1}.`);
}

/**
 * Calls fn(page, from, to, base) for each page overlapping [start, start+count), with the bit
 * range [from, to) inside that page and `base` = the absolute index of bit 0 of the page.
 */
function forPages(start: number, count: number, fn: (page: number, from: number, to: number, base: number) => void): void {
  const end = start + count;
  let i = start;
  while (i < end) {
    const page = Math.floor(i / PAGE_BITS);
    const base = page * PAGE_BITS;
    const to = Math.min(end - base, PAGE_BITS);
    fn(page, i - base, to, base);
    i = base + to;
  }
}

/**
 * A set of block indices in [0, 2^32). Absent pages read as all clear and cost nothing; a page
 * is allocated in WASM memory on the first set bit and freed when a clear() covers all of it or
 * the bitmap is disposed.
 */
export class SparseBitmap {
  #pages = new Map<number, number>();
  /** Page indices in ascending order, rebuilt lazily after pages come and go. */
  #sorted: number[] | null = [];
  #disposed = false;
  #token = {};

  constructor() {
    kernels();
    reclaim.register(this, this.#pages, this.#token);
  }

  /** Number of 8 KiB pages allocated in WASM memory. */
  get allocatedPages(): number {
    return this.#pages.size;
  }

  #live(): Map<number, number> {
    if (this.#disposed) throw new StrataError('closed', 'This SparseBitmap has been disposed.');
    return this.#pages;
  }

  /** Address of page `page`, or 0 when absent (for resolve and bulk operations). */
  pageAddress(page: number): number {
    return this.#live().get(page) ?? 0;
  }

  #ensure(page: number): number {
    let p = this.#pages.get(page);
    if (p === undefined) {
      p = allocatePage();
      this.#pages.set(page, p);
      this.#sorted = null;
    }
    return p;
  }

  #drop(page: number): void {
    const p = this.#pages.get(page);
    if (p !== undefined) {
      this.#pages.delete(page);
      freePage(p);
      this.#sorted = null;
    }
  }

  /** Present page indices in [first, last], ascending. */
  #pagesIn(first: number, last: number): number[] {
    if (this.#sorted === null) this.#sorted = [...this.#pages.keys()].sort((a, b) => a - b);
    const s = this.#sorted;
    let lo = 0, hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (s[mid]! < first) lo = mid + 1; else hi = mid;
    }
    const out: number[] = [];
    for (let i = lo; i < s.length && s[i]! <= last; i++) out.push(s[i]!);
    return out;
  }

  /** Sets bits [start, start+count). */
  set(start: number, count: number): void {
    this.#live();
    checkRange(start, count);
    const k = kernels();
    forPages(start, count, (page, from, to) => k.bits_set(this.#ensure(page), from, to));
  }

  /** Clears bits [start, start+count); pages cleared entirely are freed. */
  clear(start: number, count: number): void {
    const pages = this.#live();
    checkRange(start, count);
    if (pages.size === 0) return;
    const k = kernels();
    this.#eachPresent(start, count, (page, from, to) => {
      if (from === 0 && to === PAGE_BITS) this.#drop(page);
      else k.bits_clear(pages.get(page)!, from, to);
    });
  }

  /** Like forPages, but only for present pages (visits them in order, cheap when sparse). */
  #eachPresent(start: number, count: number, fn: (page: number, from: number, to: number, base: number) => void): void {
    if (count === 0) return;
    const end = start + count;
    const first = Math.floor(start / PAGE_BITS), last = Math.floor((end - 1) / PAGE_BITS);
    for (const page of this.#pagesIn(first, last)) {
      const base = page * PAGE_BITS;
      fn(page, Math.max(start - base, 0), Math.min(end - base, PAGE_BITS), base);
    }
  }

  /** True when bit `index` is set. */
  test(index: number): boolean {
    const pages = this.#live();
    checkInt('index', index, 0, BITMAP_LIMIT - 1);
    const p = pages.get(Math.floor(index / PAGE_BITS));
    if (p === undefined) return false;
    const bit = index % PAGE_BITS;
    return ((words32()[(p >>> 2) + (bit >>> 5)]! >>> (bit & 31)) & 1) === 1;
  }

  /** Number of set bits in [start, start+count) (default: everything). */
  count(start = 0, count = BITMAP_LIMIT - start): number {
    this.#live();
    checkRange(start, count);
    const k = kernels();
    let n = 0;
    this.#eachPresent(start, count, (page, from, to) => { n += k.bits_count(this.#pages.get(page)!, from, to); });
    return n;
  }

  /** First set bit in [from, end), or -1. */
  nextSet(from: number, end = BITMAP_LIMIT): number {
    this.#live();
    checkInt('from', from, 0, BITMAP_LIMIT);
    checkInt('end', end, 0, BITMAP_LIMIT);
    if (from >= end) return -1;
    const k = kernels();
    const first = Math.floor(from / PAGE_BITS), last = Math.floor((end - 1) / PAGE_BITS);
    for (const page of this.#pagesIn(first, last)) {
      const base = page * PAGE_BITS;
      const r = k.bits_next_set(this.#pages.get(page)!, Math.max(from - base, 0), Math.min(end - base, PAGE_BITS));
      if (r >= 0) return base + r;
    }
    return -1;
  }

  /** First clear bit in [from, end), or -1. */
  nextClear(from: number, end = BITMAP_LIMIT): number {
    const pages = this.#live();
    checkInt('from', from, 0, BITMAP_LIMIT);
    checkInt('end', end, 0, BITMAP_LIMIT);
    if (from >= end) return -1;
    const k = kernels();
    let i = from;
    while (i < end) {
      const page = Math.floor(i / PAGE_BITS);
      const base = page * PAGE_BITS;
      const to = Math.min(end - base, PAGE_BITS);
      const p = pages.get(page);
      if (p === undefined) return i;
      const r = k.bits_next_clear(p, i - base, to);
      if (r >= 0) return base + r;
      i = base + to;
    }
    return -1;
  }

  #checkOther(other: SparseBitmap): void {
    if (!(other instanceof SparseBitmap)) throw new StrataError('invalid-argument', 'other must be a SparseBitmap.');
    other.#live();
  }

  /** this |= other over [start, start+count). */
  or(other: SparseBitmap, start: number, count: number): void {
    this.#live();
    this.#checkOther(other);
    checkRange(start, count);
    const k = kernels();
    other.#eachPresent(start, count, (page, from, to) => {
      const src = other.#pages.get(page)!;
      if (k.bits_count(src, from, to) === 0) return; // never allocate a page for nothing
      k.bits_op(this.#ensure(page), other.#pages.get(page)!, from, to, 0);
    });
  }

  /** this &= other over [start, start+count). */
  and(other: SparseBitmap, start: number, count: number): void {
    this.#live();
    this.#checkOther(other);
    checkRange(start, count);
    const k = kernels();
    this.#eachPresent(start, count, (page, from, to) => {
      const src = other.#pages.get(page);
      if (src !== undefined) k.bits_op(this.#pages.get(page)!, src, from, to, 1);
      else if (from === 0 && to === PAGE_BITS) this.#drop(page);
      else k.bits_clear(this.#pages.get(page)!, from, to);
    });
  }

  /** this &= ~other over [start, start+count). */
  andNot(other: SparseBitmap, start: number, count: number): void {
    this.#live();
    this.#checkOther(other);
    checkRange(start, count);
    const k = kernels();
    this.#eachPresent(start, count, (page, from, to) => {
      const src = other.#pages.get(page);
      if (src !== undefined) k.bits_op(this.#pages.get(page)!, src, from, to, 2);
    });
  }

  /** An independent copy (its own pages). */
  clone(): SparseBitmap {
    const pages = this.#live();
    const c = new SparseBitmap();
    for (const [page, p] of pages) {
      const q = allocatePage();
      bytes().copyWithin(q, p, p + PAGE_BYTES);
      c.#pages.set(page, q);
    }
    c.#sorted = null;
    return c;
  }

  /** Frees all pages for reuse; the bitmap cannot be used afterwards. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    reclaim.unregister(this.#token);
    for (const p of this.#pages.values()) freePage(p);
    this.#pages.clear();
    this.#sorted = [];
    this.#disposed = true;
  }
}

// ---------------------------------------------------------------------------------------------
// resolve: owner of each block across a stack of layers

/** Scratch layout for resolve: layer table, then per-block owners, then runs. */
const TABLE = 0;
const OWNERS = (8 * MAX_LAYERS + 15) & ~15;
const RUNS = OWNERS + 2 * PAGE_BITS;

function checkLayers(layers: SparseBitmap[]): void {
  if (!Array.isArray(layers)) throw new StrataError('invalid-argument', 'layers must be an array of SparseBitmap, topmost first.');
  if (layers.length > MAX_LAYERS) throw new StrataError('invalid-argument', `at most ${MAX_LAYERS} layers can be resolved, got ${layers.length}.`);
  for (const l of layers) if (!(l instanceof SparseBitmap)) throw new StrataError('invalid-argument', 'layers must be an array of SparseBitmap, topmost first.');
}

/** Writes the (pageAddress, layerIndex) table of the layers present in `page`; returns its length. */
function fillTable(layers: SparseBitmap[], page: number): number {
  const w = words32();
  const t = (scratch + TABLE) >>> 2;
  let n = 0;
  for (let l = 0; l < layers.length; l++) {
    const p = layers[l]!.pageAddress(page);
    if (p !== 0) {
      w[t + 2 * n] = p;
      w[t + 2 * n + 1] = l;
      n++;
    }
  }
  return n;
}

/**
 * out[i] = index of the topmost layer (0 = top) whose bit start+i is set, or 0xFFFF when none is.
 * One kernel call per bitmap page spanned.
 */
export function resolve(layers: SparseBitmap[], start: number, count: number, out: Uint16Array): void {
  const k = kernels();
  checkLayers(layers);
  checkRange(start, count);
  if (!(out instanceof Uint16Array) || out.length < count) throw new StrataError('invalid-argument', `out must be a Uint16Array of at least ${count} entries.`);
  forPages(start, count, (page, from, to, base) => {
    const o = base + from - start;
    const n = fillTable(layers, page);
    if (n === 0) { out.fill(NO_OWNER, o, o + to - from); return; }
    k.resolve_page(scratch + TABLE, n, from, to, scratch + OWNERS);
    const src = (scratch + OWNERS) >>> 1;
    out.set(words16().subarray(src, src + to - from), o);
  });
}

/**
 * The owners of [start, start+count) as maximal runs: a flat Uint32Array of
 * [runStart, runLength, layerIndexOr0xFFFF]* in ascending order, covering the range exactly.
 */
export function resolveRuns(layers: SparseBitmap[], start: number, count: number): Uint32Array {
  const k = kernels();
  checkLayers(layers);
  checkRange(start, count);
  let out = new Uint32Array(48);
  let len = 0;
  const push = (s: number, n: number, owner: number): void => {
    // Extend the previous run when contiguous with the same owner (and the length still fits u32).
    if (len > 0 && out[len - 1] === owner && out[len - 3]! + out[len - 2]! === s && out[len - 2]! + n <= 0xFFFFFFFF) {
      out[len - 2] += n;
      return;
    }
    if (len + 3 > out.length) {
      const next = new Uint32Array(out.length * 2);
      next.set(out);
      out = next;
    }
    out[len] = s; out[len + 1] = n; out[len + 2] = owner;
    len += 3;
  };
  forPages(start, count, (page, from, to, base) => {
    const n = fillTable(layers, page);
    if (n === 0) { push(base + from, to - from, NO_OWNER); return; }
    const runs = k.resolve_runs_page(scratch + TABLE, n, from, to, scratch + OWNERS, scratch + RUNS);
    const w = words32();
    const r = (scratch + RUNS) >>> 2;
    for (let i = 0; i < runs; i++) push(base + from + w[r + 3 * i]!, w[r + 3 * i + 1]!, w[r + 3 * i + 2]!);
  });
  return out.slice(0, len);
}
