import { beforeAll, describe, expect, it } from 'vitest';
import { loadKernels, resolve, resolveRuns, SparseBitmap } from '../../../src/wasm/index.js';
import { heapStats } from '../../../src/wasm/kernels.js';
import { Prng } from './prng.js';

const LIMIT = 2 ** 32;

/** Reference: a plain Set of indices. */
class RefBitmap {
  s = new Set<number>();
  set(a: number, n: number): void { for (let i = a; i < a + n; i++) this.s.add(i); }
  clear(a: number, n: number): void { for (let i = a; i < a + n; i++) this.s.delete(i); }
  test(i: number): boolean { return this.s.has(i); }
  count(a: number, n: number): number { let c = 0; for (const i of this.s) if (i >= a && i < a + n) c++; return c; }
  nextSet(from: number, end: number): number { let best = -1; for (const i of this.s) if (i >= from && i < end && (best < 0 || i < best)) best = i; return best; }
  nextClear(from: number, end: number): number { for (let i = from; i < end; i++) if (!this.s.has(i)) return i; return -1; }
}

beforeAll(async () => {
  await loadKernels();
});

/** Random ranges concentrated around interesting places so ranges overlap. */
function randomRange(rng: Prng, centers: number[], maxLen: number): [number, number] {
  const c = centers[rng.int(centers.length)]!;
  const len = rng.int(3) === 0 ? rng.int(maxLen) : rng.int(70);
  let start = c - rng.int(maxLen) + rng.int(40);
  start = Math.max(0, Math.min(LIMIT - 1, start));
  return [start, Math.min(len, LIMIT - start)];
}

describe('SparseBitmap vs a Set', () => {
  const centers = [0, 31, 32, 65535, 65536, 131072, 3 * 65536 + 5000, 2 ** 31, LIMIT - 1, LIMIT - 65536];

  it('random set/clear/test/count/nextSet/nextClear', () => {
    const rng = new Prng(11);
    const bm = new SparseBitmap();
    const ref = new RefBitmap();
    for (let step = 0; step < 1500; step++) {
      const [a, n] = randomRange(rng, centers, 3000);
      const op = rng.int(6);
      if (op < 2) { bm.set(a, n); ref.set(a, n); }
      else if (op === 2) { bm.clear(a, n); ref.clear(a, n); }
      else if (op === 3) expect(bm.count(a, n), `count ${a} ${n}`).toBe(ref.count(a, n));
      else if (op === 4) expect(bm.nextSet(a, a + n), `nextSet ${a} ${n}`).toBe(ref.nextSet(a, a + n));
      else expect(bm.nextClear(a, a + n), `nextClear ${a} ${n}`).toBe(ref.nextClear(a, a + n));
      const t = Math.max(0, Math.min(LIMIT - 1, a + rng.int(n + 2) - 1));
      expect(bm.test(t), `test ${t}`).toBe(ref.test(t));
    }
    for (const i of ref.s) expect(bm.test(i)).toBe(true);
    expect(bm.count()).toBe(ref.s.size);
    bm.dispose();
  });

  it('page boundaries, the last index, absent pages', () => {
    const bm = new SparseBitmap();
    expect(bm.test(65535)).toBe(false);
    expect(bm.nextSet(0)).toBe(-1);
    expect(bm.nextClear(0)).toBe(0);
    expect(bm.allocatedPages).toBe(0);
    bm.set(65535, 2);
    expect(bm.allocatedPages).toBe(2);
    expect(bm.test(65534)).toBe(false);
    expect(bm.test(65535)).toBe(true);
    expect(bm.test(65536)).toBe(true);
    expect(bm.test(65537)).toBe(false);
    expect(bm.nextSet(0)).toBe(65535);
    expect(bm.nextSet(65536)).toBe(65536);
    expect(bm.nextSet(65537)).toBe(-1);
    expect(bm.nextClear(65535)).toBe(65537);
    bm.set(LIMIT - 1, 1);
    expect(bm.test(LIMIT - 1)).toBe(true);
    expect(bm.nextSet(65537)).toBe(LIMIT - 1);
    expect(bm.nextClear(LIMIT - 1)).toBe(-1);
    expect(bm.nextClear(LIMIT - 2)).toBe(LIMIT - 2);
    expect(bm.count()).toBe(3);
    expect(bm.count(LIMIT - 10, 10)).toBe(1);
    // A clear covering a whole page frees it.
    bm.clear(65536, 65536);
    expect(bm.allocatedPages).toBe(2);
    expect(() => bm.set(LIMIT - 1, 2)).toThrow(expect.objectContaining({ code: 'out-of-range' }));
    expect(() => bm.test(LIMIT)).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    bm.dispose();
  });

  it('ranges spanning many pages', () => {
    const bm = new SparseBitmap();
    bm.set(100_000, 10_000_000);
    expect(bm.count()).toBe(10_000_000);
    expect(bm.allocatedPages).toBe(Math.floor((100_000 + 10_000_000 - 1) / 65536) - Math.floor(100_000 / 65536) + 1);
    expect(bm.nextClear(100_000)).toBe(10_100_000);
    expect(bm.nextSet(0)).toBe(100_000);
    bm.clear(200_000, 5_000_000);
    expect(bm.count()).toBe(5_000_000);
    expect(bm.count(150_000, 100_000)).toBe(50_000);
    expect(bm.nextSet(200_000)).toBe(5_200_000);
    expect(bm.nextClear(5_200_000, 2 ** 32)).toBe(10_100_000);
    // Sparse over the whole space: nextSet walks only present pages.
    const sparse = new SparseBitmap();
    sparse.set(3_000_000_000, 1);
    expect(sparse.nextSet(5)).toBe(3_000_000_000);
    expect(sparse.count(0, LIMIT)).toBe(1);
    sparse.dispose();
    bm.dispose();
  });

  it('or / and / andNot over ranges vs the reference, clone', () => {
    const rng = new Prng(12);
    for (let round = 0; round < 20; round++) {
      const a = new SparseBitmap(), b = new SparseBitmap();
      const ra = new RefBitmap(), rb = new RefBitmap();
      for (let i = 0; i < 30; i++) {
        const [s, n] = randomRange(rng, centers, 2000);
        if (rng.int(2) === 0) { a.set(s, n); ra.set(s, n); } else { b.set(s, n); rb.set(s, n); }
      }
      const c = a.clone();
      const rc = new RefBitmap();
      for (const i of ra.s) rc.s.add(i);
      const [s, n] = randomRange(rng, centers, 200_000);
      const op = round % 3;
      if (op === 0) { c.or(b, s, n); for (const i of rb.s) if (i >= s && i < s + n) rc.s.add(i); }
      else if (op === 1) { c.and(b, s, n); for (const i of [...rc.s]) if (i >= s && i < s + n && !rb.s.has(i)) rc.s.delete(i); }
      else { c.andNot(b, s, n); for (const i of [...rc.s]) if (i >= s && i < s + n && rb.s.has(i)) rc.s.delete(i); }
      expect(c.count()).toBe(rc.s.size);
      for (const i of rc.s) expect(c.test(i)).toBe(true);
      // The original is untouched by operations on its clone.
      expect(a.count()).toBe(ra.s.size);
      a.dispose(); b.dispose(); c.dispose();
    }
  });

  it('or never allocates a page for an empty range; dispose frees pages for reuse', () => {
    const a = new SparseBitmap(), b = new SparseBitmap();
    b.set(70_000, 1);
    a.or(b, 0, 65536);
    expect(a.allocatedPages).toBe(0);
    a.or(b, 0, 200_000);
    expect(a.allocatedPages).toBe(1);
    expect(a.test(70_000)).toBe(true);
    a.dispose();
    b.dispose();
    expect(() => a.test(0)).toThrow(expect.objectContaining({ code: 'closed' }));
    const before = heapStats();
    const c = new SparseBitmap();
    c.set(0, 65536 * 2); // reuses the two freed pages: the heap does not grow, and they are zeroed
    expect(heapStats().top).toBe(before.top);
    expect(c.count(0, 65536 * 2)).toBe(65536 * 2);
    c.clear(0, 65536 * 2);
    expect(c.allocatedPages).toBe(0);
    const d = new SparseBitmap();
    d.set(5, 1);
    expect(d.count()).toBe(1);
    c.dispose(); d.dispose();
  });
});

/** Reference for resolve tests: a plain boolean array over a window [base, base + size). */
class WindowRef {
  bits: Uint8Array;
  constructor(readonly base: number, size: number) { this.bits = new Uint8Array(size); }
  set(a: number, n: number): void { this.bits.fill(1, a - this.base, a - this.base + n); }
  clear(a: number, n: number): void { this.bits.fill(0, a - this.base, a - this.base + n); }
  test(i: number): boolean { return this.bits[i - this.base] === 1; }
}

/** Index of the first difference, or -1 (faster than toEqual on large arrays, same verdict). */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe('resolve / resolveRuns vs a plain reference', () => {
  function refOwners(layers: { test(i: number): boolean }[], start: number, count: number): Uint16Array {
    const out = new Uint16Array(count);
    for (let i = 0; i < count; i++) {
      out[i] = 0xFFFF;
      for (let l = 0; l < layers.length; l++) if (layers[l]!.test(start + i)) { out[i] = l; break; }
    }
    return out;
  }

  function refRuns(owners: Uint16Array, start: number): number[] {
    const runs: number[] = [];
    for (let i = 0; i < owners.length;) {
      let j = i + 1;
      while (j < owners.length && owners[j] === owners[i]) j++;
      runs.push(start + i, j - i, owners[i]!);
      i = j;
    }
    return runs;
  }

  it('1..8 layers, random contents and ranges', () => {
    const rng = new Prng(21);
    for (let nl = 1; nl <= 8; nl++) {
      const bms: SparseBitmap[] = [], refs: WindowRef[] = [];
      const region = rng.int(2) === 0 ? 0 : LIMIT - 300_000;
      for (let l = 0; l < nl; l++) {
        const bm = new SparseBitmap(), ref = new WindowRef(region, 300_000);
        for (let i = 0; i < 40; i++) {
          const s = region + rng.int(290_000), n = rng.int(3) === 0 ? rng.int(10_000) : rng.int(100);
          bm.set(s, n); ref.set(s, n);
          if (rng.int(4) === 0) { const c = region + rng.int(290_000), m = rng.int(5000); bm.clear(c, m); ref.clear(c, m); }
        }
        bms.push(bm); refs.push(ref);
      }
      for (let q = 0; q < 12; q++) {
        const start = region + rng.int(200_000), count = rng.int(3) === 0 ? rng.int(100) : rng.int(100_000);
        const out = new Uint16Array(count + 1).fill(7);
        resolve(bms, start, count, out);
        const want = refOwners(refs, start, count);
        expect(firstDiff(out.subarray(0, count), want), `layers ${nl} start ${start} count ${count}`).toBe(-1);
        expect(out[count]).toBe(7);
        const runs = resolveRuns(bms, start, count);
        expect(firstDiff(runs, refRuns(want, start))).toBe(-1);
      }
      for (const b of bms) b.dispose();
    }
  });

  it('whole-word and whole-page patterns, layers absent in some pages, empty ranges', () => {
    const a = new SparseBitmap(), b = new SparseBitmap(), c = new SparseBitmap();
    a.set(65536, 65536);       // a full page
    b.set(0, 200_000);         // spans three pages
    c.set(32, 32);             // one word
    c.set(65536 + 64, 1);
    const layers = [c, a, b];
    const refs = [new WindowRef(0, 300_000), new WindowRef(0, 300_000), new WindowRef(0, 300_000)];
    refs[0]!.set(32, 32); refs[0]!.set(65536 + 64, 1); refs[1]!.set(65536, 65536); refs[2]!.set(0, 200_000);
    const out = new Uint16Array(300_000);
    resolve(layers, 0, 300_000, out);
    expect(firstDiff(out, refOwners(refs, 0, 300_000))).toBe(-1);
    const runs = [...resolveRuns(layers, 0, 300_000)];
    expect(runs).toEqual([0, 32, 2, 32, 32, 0, 64, 65536 - 64, 2, 65536, 64, 1, 65536 + 64, 1, 0, 65536 + 65, 65536 - 65, 1, 131072, 200_000 - 131072, 2, 200_000, 100_000, 0xFFFF]);
    expect([...resolveRuns(layers, 5, 0)]).toEqual([]);
    expect([...resolveRuns([], 5, 10)]).toEqual([5, 10, 0xFFFF]);
    resolve(layers, 0, 0, new Uint16Array(0));
    expect([...resolveRuns(layers, LIMIT - 3, 3)]).toEqual([LIMIT - 3, 3, 0xFFFF]);
    for (const l of layers) l.dispose();
  });
});
