import { describe, expect, it } from 'vitest';
import { JOURNAL_ROWS } from '../../../src/bench/journal.js';
import { runBenchmarks, type BenchResult } from '../../../src/bench/index.js';

function positive(r: BenchResult): void {
  for (const x of [r.ours, r.peer]) {
    expect(Number.isFinite(x), r.name).toBe(true);
    expect(x, r.name).toBeGreaterThan(0);
  }
  // a diff from the index can be a thousand times faster than reading both sides: its ratio rounds to 0
  expect(r.ratio, r.name).toBeGreaterThanOrEqual(0);
  expect(typeof r.note).toBe('string');
}

// Shape only: timings are never asserted.
describe('write log benchmarks (quick)', () => {
  it('journaled vs plain writes, view open + reads by log length, diff and incremental export, in one run', async () => {
    const out = await runBenchmarks({ quick: true, only: ['journal'] });
    const names = out.map((r) => r.name);
    expect(names[0]).toBe(JOURNAL_ROWS.random);
    expect(names[1]).toBe(JOURNAL_ROWS.sequential);
    expect(names.filter((n) => n.startsWith(JOURNAL_ROWS.views)).length).toBeGreaterThanOrEqual(2);
    expect(names.length).toBeGreaterThan(4);
    for (const r of out) positive(r);
  }, 600_000);
});
