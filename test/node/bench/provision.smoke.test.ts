import { describe, expect, it } from 'vitest';
import { benchProvision, bootPattern } from '../../../src/bench/provision.js';

// Counts only (requests and bytes are deterministic for a seeded trace); timings are never asserted.
describe('provision benchmark (small)', () => {
  it('the boot-like trace is mostly sequential small reads inside the image', () => {
    const t = bootPattern(8 << 20, 500);
    expect(t.length).toBe(500);
    let sequential = 0;
    for (let i = 1; i < t.length; i++) if (t[i]![0] === t[i - 1]![0] + t[i - 1]![1]) sequential++;
    expect(sequential / t.length).toBeGreaterThan(0.7);
    for (const [o, l] of t) expect(o + l).toBeLessThanOrEqual(8 << 20);
  });

  it('reports requests, bytes and times against both peers; copy on read sends far fewer requests', async () => {
    const r = await benchProvision({ reads: 300, imageSize: 8 << 20 });
    expect(r.map((x) => x.name)).toHaveLength(7);
    const req = r[0]!;
    expect(req.peer).toBe(300);
    expect(req.ours).toBeLessThan(req.peer / 3);
    expect(r[1]!.ours).toBeLessThan(r[1]!.peer);
    for (const x of r) expect(Number.isFinite(x.ours) && Number.isFinite(x.peer)).toBe(true);
  });
});
