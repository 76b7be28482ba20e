/** RangeLock (src/util/range-lock.ts): what runs at once, what waits, and in which order. */
import { describe, expect, it } from 'vitest';
import { ALL_BLOCKS, RangeLock } from '../../../src/util/range-lock.js';
import { Rng } from '../helpers/random.js';

async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

describe('RangeLock', () => {
  it('grants disjoint exclusive holds and overlapping shared holds at once, without a promise', () => {
    const l = new RangeLock();
    const a = l.acquire(0, 4, true);
    const b = l.acquire(4, 8, true);
    const c = l.acquire(10, 20, false);
    const d = l.acquire(12, 14, false);
    for (const r of [a, b, c, d]) expect(typeof r).toBe('function');
    for (const r of [a, b, c, d]) (r as () => void)();
    expect(l.size).toBe(0);
  });

  it('an overlapping hold waits for the earlier conflicting one, and a later one never overtakes it', async () => {
    const l = new RangeLock();
    const order: string[] = [];
    const w1 = l.acquire(0, 4, true) as () => void;
    const r1 = l.acquire(3, 5, false); // waits for w1
    const w2 = l.acquire(4, 6, true); // no conflict with w1, but with r1 (asked earlier): waits for r1
    expect(r1).toBeInstanceOf(Promise);
    expect(w2).toBeInstanceOf(Promise);
    void (r1 as Promise<() => void>).then((rel) => {
      order.push('r1');
      setImmediate(rel);
    });
    void (w2 as Promise<() => void>).then((rel) => {
      order.push('w2');
      rel();
    });
    await settle();
    expect(order).toEqual([]);
    expect(l.sharable(0, 1)).toBe(false);
    expect(l.sharable(8, 9)).toBe(true);
    w1();
    await settle();
    expect(order).toEqual(['r1', 'w2']);
    expect(l.size).toBe(0);
  });

  it('the whole range waits for everything in flight and holds back everything after it', async () => {
    const l = new RangeLock();
    const a = l.acquire(5, 6, true) as () => void;
    const all = l.acquire(ALL_BLOCKS[0], ALL_BLOCKS[1], true);
    const later = l.acquire(100, 101, false);
    expect(all).toBeInstanceOf(Promise);
    expect(later).toBeInstanceOf(Promise);
    let got = '';
    void (all as Promise<() => void>).then((rel) => {
      got += 'all';
      rel();
    });
    void (later as Promise<() => void>).then((rel) => {
      got += '+later';
      rel();
    });
    await settle();
    expect(got).toBe('');
    a();
    await settle();
    expect(got).toBe('all+later');
  });

  it('random holds: no two conflicting holds are ever held at once, and every hold is granted', async () => {
    const rng = new Rng(7);
    const l = new RangeLock();
    const held = new Set<{ s: number; e: number; x: boolean }>();
    let granted = 0;
    const tasks: Promise<void>[] = [];
    for (let i = 0; i < 400; i++) {
      const s = rng.int(50);
      const e = s + 1 + rng.int(6);
      const x = rng.next() < 0.5;
      tasks.push(
        l.run(s, e, x, async () => {
          const me = { s, e, x };
          for (const h of held) if ((h.x || x) && h.s < e && s < h.e) throw new Error(`conflict: [${s},${e}) ${x} with [${h.s},${h.e}) ${h.x}`);
          held.add(me);
          granted++;
          for (let k = rng.int(3); k > 0; k--) await new Promise((r) => setImmediate(r));
          held.delete(me);
        }),
      );
      if (rng.next() < 0.3) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(tasks);
    expect(granted).toBe(400);
    expect(l.size).toBe(0);
  });
});
