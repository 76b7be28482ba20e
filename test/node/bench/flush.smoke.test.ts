import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { FIO_ROW, FLUSH_ROW } from '../../../src/bench/flush.js';
import { runBenchmarks, type BenchResult } from '../../../src/bench/index.js';

function hasFio(): boolean {
  try {
    execFileSync('fio', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function positive(r: BenchResult): void {
  for (const x of [r.ours, r.peer, r.ratio]) {
    expect(Number.isFinite(x)).toBe(true);
    expect(x).toBeGreaterThan(0);
  }
  expect(r.unit).toBe('ops/s');
  expect(typeof r.note).toBe('string');
}

// Shape only: timings are never asserted.
describe('flush-heavy benchmark (quick)', () => {
  it('16 writers with write + flush vs pwrite + fdatasync on a raw file; the fio anchor row when fio is installed', async () => {
    const seen: BenchResult[] = [];
    const out = await runBenchmarks({ quick: true, only: ['flush'], onResult: (r) => seen.push(r) });
    expect(seen).toEqual(out);
    const fio = hasFio();
    expect(out.map((r) => r.name)).toEqual(fio ? [FLUSH_ROW, FIO_ROW] : [FLUSH_ROW]);
    const flush = out[0]!;
    positive(flush);
    expect(flush.target).toBe(1.0);
    expect(typeof flush.met).toBe('boolean');
    expect(flush.rounds).toBe(1);
    expect(flush.note).toMatch(fio ? /fdatasync=1: \d+ ops\/s/ : /fio not installed/);
    if (fio) {
      positive(out[1]!);
      expect(out[1]!.target).toBeUndefined();
      expect(out[1]!.note).toMatch(/O_DIRECT \(--direct=1\): \d+ ops\/s/);
    }
  });
});
