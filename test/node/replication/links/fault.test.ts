/**
 * The fault-injecting link (src/replication/links/fault.ts): each fault does what it says, the
 * same way for the same seed, on a fake clock; the counters count what crossed each way.
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../../../src/consistency/framing.js';
import type { Link } from '../../../../src/consistency/link.js';
import { faultLinkPair, type LinkFaultPlan } from '../../../../src/replication/links/fault.js';
import { FakeClock, settle } from '../../consistency/fake-clock.js';
import { Inbox } from './kinds.js';

/** Send 0..n-1 from the faulty end, settle, and return what arrived (and the parts). */
async function run(plan: LinkFaultPlan, n = 10, clock?: FakeClock) {
  const [a, b] = faultLinkPair<object, object>({ ...plan, clock });
  const atB = new Inbox(b as Link<object>);
  const atA = new Inbox(a);
  for (let i = 0; i < n; i++) a.send({ i });
  await settle();
  return { a, b, atA, atB, got: () => atB.messages.map((m) => m.i as number) };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('faultLinkPair', () => {
  it('with no faults delivers everything in order and counts messages and frame bytes each way', async () => {
    const { a, b, atA, got } = await run({});
    expect(got()).toEqual(range(10));
    b.send({ back: 1, data: new Uint8Array(1000) });
    await settle();
    expect(atA.messages).toHaveLength(1);
    expect(a.stats.out.messages).toBe(10);
    expect(a.stats.out.bytes).toBe(range(10).reduce((s, i) => s + encodeFrame({ i }).length, 0));
    expect(a.stats.in.messages).toBe(1);
    expect(a.stats.in.bytes).toBe(encodeFrame({ back: 1, data: new Uint8Array(1000) }).length);
  });

  it('drops the messages named', async () => {
    const { a, got } = await run({ out: { drop: [2, 5] } });
    expect(got()).toEqual([0, 1, 3, 4, 6, 7, 8, 9]);
    expect(a.stats.out).toMatchObject({ offered: 10, messages: 8, dropped: 2 });
  });

  it('drops with a probability, the same messages for the same seed, others for another seed', async () => {
    const one = (await run({ seed: 7, out: { dropProbability: 0.3 } }, 200)).got();
    const again = (await run({ seed: 7, out: { dropProbability: 0.3 } }, 200)).got();
    const other = (await run({ seed: 8, out: { dropProbability: 0.3 } }, 200)).got();
    expect(again).toEqual(one);
    expect(other).not.toEqual(one);
    expect(one.length).toBeGreaterThan(0);
    expect(one.length).toBeLessThan(200);
    // what survives stays in order
    expect([...one].sort((x, y) => x - y)).toEqual(one);
    // another probability in the plan does not move the drops (draws per message are fixed)
    const withDup = (await run({ seed: 7, out: { dropProbability: 0.3, duplicateProbability: 0.2 } }, 200)).got();
    expect([...new Set(withDup)]).toEqual(one);
  });

  it('duplicates the messages named', async () => {
    const { a, got } = await run({ out: { duplicate: [3] } });
    expect(got()).toEqual([0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9]);
    expect(a.stats.out).toMatchObject({ messages: 11, duplicated: 1 });
  });

  it('reorders: a message named is held and arrives right after the next', async () => {
    const { a, got } = await run({ out: { reorder: [4] } });
    expect(got()).toEqual([0, 1, 2, 3, 5, 4, 6, 7, 8, 9]);
    expect(a.stats.out.reordered).toBe(1);
  });

  it('reorders the last message before the close, not after it', async () => {
    const { a, atB, got } = await run({ out: { reorder: [9] } });
    expect(got()).toEqual(range(9));
    a.close();
    await atB.closed();
    expect(got()).toEqual(range(10));
  });

  it('delays on the fake clock, keeping the order (fixed and random delays)', async () => {
    const clock = new FakeClock();
    const { atB, got } = await run({ out: { delayMs: 50 } }, 5, clock);
    expect(got()).toEqual([]);
    await clock.advance(49);
    expect(got()).toEqual([]);
    await clock.advance(1);
    expect(got()).toEqual(range(5));
    expect(atB.closes).toEqual([]);

    const c2 = new FakeClock();
    const r = await run({ seed: 3, out: { delayMs: [10, 100] } }, 50, c2);
    await c2.advance(9);
    expect(r.got()).toEqual([]);
    await c2.advance(91);
    expect(r.got()).toEqual(range(50));
    expect(r.a.stats.out.delayed).toBe(50);
  });

  it('a close waits behind delayed messages', async () => {
    const clock = new FakeClock();
    const { a, atB, got } = await run({ out: { delayMs: 30 } }, 3, clock);
    a.close();
    await settle();
    expect(atB.closes).toEqual([]);
    await clock.advance(30);
    expect(got()).toEqual([0, 1, 2]);
    expect(atB.closes).toHaveLength(1);
  });

  it('disconnects at message N: earlier ones arrive, both ends see close once, later sends do not throw', async () => {
    const { a, b, atA, atB, got } = await run({ out: { disconnectAt: 5 } });
    expect(got()).toEqual(range(5));
    expect(atA.closes).toHaveLength(1);
    expect(atA.closes[0]).toMatch(/disconnected at outgoing message 5/);
    expect(atB.closes).toHaveLength(1);
    expect(a.brokenBy).toMatch(/message 5/);
    expect(() => a.send({ late: 1 })).not.toThrow();
    expect(() => b.send({ late: 1 })).not.toThrow();
    await settle();
    expect(atA.closes).toHaveLength(1);
    expect(atB.closes).toHaveLength(1);
  });

  it('disconnects at message N counted over both directions', async () => {
    const [a, b] = faultLinkPair<object, object>({ disconnectAt: 3 });
    const atA = new Inbox(a);
    const atB = new Inbox(b as Link<object>);
    a.send({ i: 0 });
    await settle();
    b.send({ j: 0 });
    await settle();
    a.send({ i: 1 });
    await settle();
    b.send({ j: 1 }); // message 3: breaks the link
    await settle();
    expect(atB.messages).toEqual([{ i: 0 }, { i: 1 }]);
    expect(atA.messages).toEqual([{ j: 0 }]);
    expect(atA.closes).toHaveLength(1);
    expect(atB.closes).toHaveLength(1);
  });

  it('applies faults to incoming messages too', async () => {
    const [a, b] = faultLinkPair<object, object>({ in: { drop: [1], duplicate: [2], reorder: [3] } });
    const atA = new Inbox(a);
    for (let i = 0; i < 6; i++) b.send({ i });
    await settle();
    expect(atA.messages.map((m) => m.i)).toEqual([0, 2, 2, 4, 3, 5]);
    expect(a.stats.in).toMatchObject({ offered: 6, messages: 6, dropped: 1, duplicated: 1, reordered: 1 });
  });

  it('is deterministic: the same plan and seed give the same arrivals and counters', async () => {
    const plan: LinkFaultPlan = { seed: 42, out: { dropProbability: 0.1, duplicateProbability: 0.1, reorderProbability: 0.1, delayMs: [0, 20] } };
    const go = async () => {
      const clock = new FakeClock();
      const r = await run(plan, 300, clock);
      await clock.advance(100);
      return { got: r.got(), stats: { ...r.a.stats.out } };
    };
    const x = await go();
    const y = await go();
    expect(y).toEqual(x);
    expect(x.stats.dropped).toBeGreaterThan(0);
    expect(x.stats.duplicated).toBeGreaterThan(0);
    expect(x.stats.reordered).toBeGreaterThan(0);
  });
});
