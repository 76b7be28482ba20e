import { describe, expect, it } from 'vitest';
import { runBenchmarks } from '../../../src/bench/index.js';

// Timings are never asserted: only that the benchmark runs and reports sane numbers.
describe('consistency benchmark (quick)', () => {
  it('reports 1, 4 and 16 participants, idle and writing, against plain snapshots', async () => {
    const out = await runBenchmarks({ quick: true, only: ['consistency'] });
    const names = out.map((r) => r.name.replace(/ \(.*\)$/, ''));
    const expected = [1, 4, 16, 1, 4, 16, 1, 4, 16].map((n, i) => `consistent snapshot of 2 ${i < 6 ? 'file' : 'memory'} volumes, ${n} ${i < 3 || i >= 6 ? 'idle' : 'writing'} participant${n === 1 ? '' : 's'}`);
    expect(names).toEqual(expected);
    for (const r of out) {
      for (const x of [r.ours, r.peer, r.ratio]) expect(x).toBeGreaterThan(0);
      expect(r.unit).toBe('ms');
      expect(r.peerName).toContain('Volume.snapshot');
    }
  });
});
