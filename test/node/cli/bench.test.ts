import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { BenchResult } from '../../../src/bench/result.js';
import { benchTable } from '../../../src/cli/commands/bench.js';
import type { RunBenchmarks } from '../../../src/cli/io.js';
import { cli } from './harness.js';

const RESULTS: BenchResult[] = [
  { name: 'xxh3-128', ours: 9000.5, peer: 4500, ratio: 2, unit: 'MB/s', peerName: 'hash-wasm', target: 1, met: true },
  { name: 'copy', ours: 100, peer: 200, ratio: 0.5, unit: 'MB/s', peerName: 'TypedArray.set' },
];

function fake(calls: Parameters<RunBenchmarks>[0][]): RunBenchmarks {
  return async (opts) => {
    calls.push(opts);
    for (const r of RESULTS) opts.onResult?.(r);
    return RESULTS;
  };
}

describe('bench (with a stand-in runBenchmarks)', () => {
  it('--json prints one BenchResult per line, streamed; passes --quick and --only', async () => {
    const calls: Parameters<RunBenchmarks>[0][] = [];
    const r = await cli(['bench', '--json', '--quick', '--only', 'kernels, chain'], { runBenchmarks: fake(calls) });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual(RESULTS);
    expect(calls[0]).toMatchObject({ quick: true, only: ['kernels', 'chain'] });
  });

  it('without --json prints a table with ours, peer, ratio, target and met', async () => {
    const r = await cli(['bench'], { runBenchmarks: fake([]) });
    expect(r.code).toBe(0);
    const [header, first, second] = r.stdout.trim().split('\n');
    expect(header).toMatch(/benchmark\s+ours\s+peer\s+unit\s+peer name\s+ratio\s+target\s+met/);
    expect(first).toMatch(/xxh3-128\s+9000\.5\s+4500\s+MB\/s\s+hash-wasm\s+2\s+1\s+yes/);
    expect(second).toMatch(/copy .* 0\.5\s+-\s+-$/);
    expect(benchTable([])).toMatch(/^benchmark/);
  });

  it('a failing benchmark run is one line on stderr, exit 2', async () => {
    const r = await cli(['bench'], { runBenchmarks: async () => Promise.reject(new Error('peer missing')) });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('stratadisk: internal error: peer missing\n');
  });

  it('rejects extra arguments', async () => {
    expect((await cli(['bench', 'extra'], { runBenchmarks: fake([]) })).code).toBe(2);
  });
});

describe('bench (the real src/bench/index.ts, loaded lazily)', () => {
  it.skipIf(!existsSync(new URL('../../../src/bench/index.ts', import.meta.url)))('rejects an unknown --only name before running anything', async () => {
    const r = await cli(['bench', '--only', 'kernels,nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: bench: --only: unknown benchmark "nope" \(known: .*kernels/);
  });
});
