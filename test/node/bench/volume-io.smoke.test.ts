import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runBenchmarks, type BenchResult } from '../../../src/bench/index.js';

function hasQemuImg(): boolean {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const qemu = hasQemuImg();

function wellFormed(r: BenchResult): void {
  expect(typeof r.name).toBe('string');
  expect(r.name.length).toBeGreaterThan(0);
  for (const x of [r.ours, r.peer, r.ratio]) {
    expect(Number.isFinite(x)).toBe(true);
    expect(x).toBeGreaterThan(0);
  }
  expect(r.unit.length).toBeGreaterThan(0);
  expect(r.peerName.length).toBeGreaterThan(0);
  expect(typeof r.note).toBe('string');
  if (r.target !== undefined) expect(typeof r.met).toBe('boolean');
}

// Timings are never asserted: only that each benchmark runs and reports sane numbers.
describe('volume benchmarks (quick)', () => {
  it('sequential: well-formed results, streamed through onResult', async () => {
    const seen: BenchResult[] = [];
    const out = await runBenchmarks({ quick: true, only: ['sequential'], onResult: (r) => seen.push(r) });
    expect(out.length).toBe(6); // per chunk size: vs readSync, vs NodeFileStore, verification on vs off
    expect(seen).toEqual(out);
    for (const r of out) {
      wellFormed(r);
      expect(r.unit).toBe('MB/s');
    }
  });

  it.skipIf(!qemu)('chain vs qemu-img bench: well-formed results for reads and writes at QD1 and QD16, 64 KiB writes and a 70/30 mix at QD16', async () => {
    const out = await runBenchmarks({ quick: true, only: ['chain'] });
    expect(out.map((r) => r.name)).toEqual([
      'chain: random 4 KiB reads, 4 layers, QD1',
      'chain: random 4 KiB reads, 4 layers, QD16',
      'chain: random 4 KiB reads, 4 layers, QD1, verification on vs off',
      'chain: random 4 KiB reads, 4 layers, QD1, fresh open (cold verification) vs qemu-img',
      'chain: random 4 KiB reads, 4 layers, QD16, verification on vs off',
      'chain: random 4 KiB reads, 4 layers, QD16, fresh open (cold verification) vs qemu-img',
      'chain: random 4 KiB writes into a new top layer, QD1',
      'chain: random 4 KiB writes into a new top layer, QD16',
      'chain: random 64 KiB writes into a new top layer, QD16',
      'chain: mixed 70/30 random 4 KiB reads/writes, new top layer, QD16',
    ]);
    for (const r of out) {
      wellFormed(r);
      expect(r.unit).toBe('ops/s');
    }
  });

  it.skipIf(qemu)('chain: skipped, qemu-img is not installed (bash .ci/setup-system.sh installs qemu-utils)', () => {});

  it('rejects an unknown group name', async () => {
    await expect(runBenchmarks({ only: ['nope'] })).rejects.toThrow(/unknown benchmark group/);
  });
});
