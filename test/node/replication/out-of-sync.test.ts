import { describe, expect, it } from 'vitest';
import { prng } from '../../../src/bench/prng.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { OutOfSync } from '../../../src/replication/out-of-sync.js';
import { PAGE_BITS } from '../../../src/replication/bitmap-pages.js';

/**
 * The out-of-sync bitmap against a model (one byte per block): seeded random marks, clears,
 * markAll, persists, clean reopens and abrupt reopens (the object dropped without close: the
 * store then holds the last persist). 100,000 operations with STRATADISK_LONG=1.
 */
const LONG = process.env.STRATADISK_LONG === '1';
const BS = 4096;
/** 3 pages and a part, and a last block shorter than a block */
const BLOCKS = 3 * PAGE_BITS + 1234;
const SIZE = (BLOCKS - 1) * BS + 1000;

function modelRuns(m: Uint8Array, from = 0, max = Infinity): number[] {
  const out: number[] = [];
  let left = max;
  for (let b = from; b < m.length && left > 0; b++) {
    if (!m[b]) continue;
    let e = b;
    while (e < m.length && m[e] && e - b < left) e++;
    out.push(b, e - b);
    left -= e - b;
    b = e;
  }
  return out;
}

function count(m: Uint8Array): number {
  let n = 0;
  for (const x of m) n += x;
  return n;
}

describe('OutOfSync', () => {
  it('marks, clears, counts and lists runs across pages, and keeps them over a reopen', async () => {
    const ns = new MemoryNamespace();
    const oos = await OutOfSync.open(ns, 'replication.s1.oos', { size: SIZE, blockSize: BS });
    expect(oos.dirtyBlocks).toBe(0);
    expect(oos.runs()).toEqual([]);
    oos.markRuns([5, 3, PAGE_BITS - 2, 4, BLOCKS - 1, 1]);
    expect(oos.dirtyBlocks).toBe(8);
    expect(oos.dirtyBytes).toBe(7 * BS + 1000);
    expect(oos.runs()).toEqual([5, 3, PAGE_BITS - 2, 4, BLOCKS - 1, 1]);
    expect(oos.runs(6, 4)).toEqual([6, 2, PAGE_BITS - 2, 2]);
    expect(oos.isDirty(PAGE_BITS + 1)).toBe(true);
    expect(oos.isDirty(PAGE_BITS + 2)).toBe(false);
    oos.clearRuns([PAGE_BITS - 1, 2, 0, 6]);
    expect(oos.runs()).toEqual([6, 2, PAGE_BITS - 2, 1, PAGE_BITS + 1, 1, BLOCKS - 1, 1]);
    await oos.persist();
    oos.markRuns([100, 1]); // not persisted: an abrupt end loses it (the caller's AL covers such writes)
    const again = await OutOfSync.open(ns, 'replication.s1.oos', { size: SIZE, blockSize: BS });
    expect(again.runs()).toEqual([6, 2, PAGE_BITS - 2, 1, PAGE_BITS + 1, 1, BLOCKS - 1, 1]);
    await oos.close();
    const third = await OutOfSync.open(ns, 'replication.s1.oos', { size: SIZE, blockSize: BS });
    expect(third.runs()).toEqual([6, 2, 100, 1, PAGE_BITS - 2, 1, PAGE_BITS + 1, 1, BLOCKS - 1, 1]);
    third.markAll();
    expect(third.dirtyBlocks).toBe(BLOCKS);
    expect(third.dirtyBytes).toBe(SIZE);
    expect(third.runs()).toEqual([0, BLOCKS]);
    await third.close();
    expect((await OutOfSync.open(ns, 'replication.s1.oos', { size: SIZE, blockSize: BS })).runs()).toEqual([0, BLOCKS]);
  });

  it('refuses runs outside the volume and odd run lists', async () => {
    const oos = await OutOfSync.open(new MemoryNamespace(), 'x', { size: SIZE, blockSize: BS });
    expect(() => oos.markRuns([BLOCKS - 1, 2])).toThrow(expect.objectContaining({ code: 'out-of-range' }));
    expect(() => oos.markRuns([1])).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(() => oos.clearRuns([-1, 1])).toThrow(expect.objectContaining({ code: 'out-of-range' }));
    expect(() => oos.isDirty(BLOCKS)).toThrow(expect.objectContaining({ code: 'out-of-range' }));
    expect(oos.dirtyBlocks).toBe(0);
  });

  it('is sparse: a 1 TiB volume at 4 KiB blocks costs its marked pages, on the store too, and markAll allocates no bits', async () => {
    const ns = new MemoryNamespace();
    const geometry = { size: 2 ** 40, blockSize: 4096 };
    const oos = await OutOfSync.open(ns, 'big', geometry);
    oos.markRuns([12345678, 1, 2 ** 28 - 1, 1]);
    await oos.persist();
    const bytes = () => [...ns.files.values()].reduce((n, f) => n + f.length, 0);
    expect(bytes()).toBeLessThan(1024);
    oos.markAll();
    expect(oos.dirtyBlocks).toBe(2 ** 28);
    await oos.persist();
    // 8192 "all set" page records, no bits
    expect(bytes()).toBeLessThan(8192 * 64);
    oos.clearRuns([0, 2 ** 28 - 10]);
    expect(oos.runs()).toEqual([2 ** 28 - 10, 10]);
    await oos.close();
    expect((await OutOfSync.open(ns, 'big', geometry)).runs()).toEqual([2 ** 28 - 10, 10]);
  });

  it('a geometry other than the one it was written for is refused (corrupt); openOrReset starts over with everything out of sync', async () => {
    const ns = new MemoryNamespace();
    const oos = await OutOfSync.open(ns, 'g', { size: SIZE, blockSize: BS });
    oos.markRuns([1, 1]);
    await oos.close();
    await expect(OutOfSync.open(ns, 'g', { size: SIZE + BS, blockSize: BS })).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining('full resync') });
    await expect(OutOfSync.open(ns, 'g', { size: SIZE, blockSize: 2 * BS })).rejects.toMatchObject({ code: 'corrupt' });
    const { oos: reset, reset: why } = await OutOfSync.openOrReset(ns, 'g', { size: SIZE + BS, blockSize: BS });
    expect(why).toContain('was written for a volume of');
    expect(reset.runs()).toEqual([0, BLOCKS + 1]);
    await reset.close();
    expect((await OutOfSync.open(ns, 'g', { size: SIZE + BS, blockSize: BS })).dirtyBlocks).toBe(BLOCKS + 1);
  });

  it('delete removes its files', async () => {
    const ns = new MemoryNamespace();
    const oos = await OutOfSync.open(ns, 'd', { size: SIZE, blockSize: BS });
    oos.markRuns([1, 1]);
    await oos.persist();
    await oos.delete();
    expect(await ns.list()).toEqual([]);
  });

  it('model: seeded random marks, clears, persists and reopens agree with a plain array', async () => {
    const ops = LONG ? 100_000 : 4_000;
    for (const seed of [1, 2]) {
      const rnd = prng(seed);
      const int = (n: number) => Math.floor(rnd() * n);
      const ns = new MemoryNamespace();
      const geometry = { size: SIZE, blockSize: BS };
      const open = () => OutOfSync.open(ns, 'm', geometry, { compactMinBytes: int(2) ? 0 : 64 * 1024 });
      let oos = await open();
      const model = new Uint8Array(BLOCKS);
      let persisted = model.slice();
      const run = (): [number, number] => {
        const r = rnd();
        const len = r < 0.6 ? 1 + int(4) : r < 0.9 ? 1 + int(300) : 1 + int(2 * PAGE_BITS);
        const first = rnd() < 0.1 ? PAGE_BITS * (1 + int(3)) - int(len) : int(BLOCKS);
        const f = Math.max(0, Math.min(first, BLOCKS - 1));
        return [f, Math.min(len, BLOCKS - f)];
      };
      for (let i = 0; i < ops; i++) {
        const r = rnd();
        if (r < 0.45) {
          const runs: number[] = [];
          for (let k = 1 + int(3); k > 0; k--) runs.push(...run());
          oos.markRuns(runs);
          for (let k = 0; k < runs.length; k += 2) model.fill(1, runs[k]!, runs[k]! + runs[k + 1]!);
        } else if (r < 0.85) {
          const runs = run();
          oos.clearRuns(runs);
          model.fill(0, runs[0], runs[0] + runs[1]);
        } else if (r < 0.851) {
          oos.markAll();
          model.fill(1);
        } else if (r < 0.95) {
          await oos.persist();
          persisted = model.slice();
        } else if (r < 0.975) {
          await oos.close();
          persisted = model.slice();
          oos = await open();
        } else {
          // abrupt end: the old object is dropped without close
          oos = await open();
          model.set(persisted);
        }
        if (i % 97 === 0 || r >= 0.95) {
          expect(oos.dirtyBlocks, `op ${i}`).toBe(count(model));
          expect(oos.runs(), `op ${i}`).toEqual(modelRuns(model));
          const from = int(BLOCKS), max = 1 + int(5000);
          expect(oos.runs(from, max), `op ${i}`).toEqual(modelRuns(model, from, max));
          const b = int(BLOCKS);
          expect(oos.isDirty(b)).toBe(model[b] === 1);
        }
      }
      await oos.close();
    }
  }, 600_000);
});
