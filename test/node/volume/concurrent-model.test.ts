import { describe, expect, it } from 'vitest';
import { FaultController, FaultNamespace, type CrashMode } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { explain, type ModelWrite } from './concurrent-model.js';
import { runConcurrentWorkload, verifyConcurrentRecovered } from './concurrent-workload.js';
import { copyNamespace } from './workload.js';
import { LONG } from './crash-sweep.js';
import { FLUSH_TURNS } from './crash-sweep-concurrent.js';
import { TraceNamespace } from './trace-namespace.js';

function w(id: number, offset: number, bytes: number[], acked = true): ModelWrite {
  return { id, what: `w${id}`, offset, data: Uint8Array.from(bytes), acked };
}

describe('the block model (explain)', () => {
  const base = new Uint8Array(8);
  const a = w(1, 0, [1, 1, 1, 1]);
  const b = w(2, 2, [2, 2, 2, 2]);
  const ok = (c: number[], req: ModelWrite[] = []) => explain(Uint8Array.from(c), 0, 0, 8, base, [a, b], new Set(req));

  it('accepts any subset of the writes in any order', () => {
    expect(ok([0, 0, 0, 0, 0, 0, 0, 0])).toBeNull();
    expect(ok([1, 1, 1, 1, 0, 0, 0, 0], [a])).toBeNull();
    expect(ok([1, 1, 2, 2, 2, 2, 0, 0], [a, b])).toBeNull();
    expect(ok([1, 1, 1, 1, 2, 2, 0, 0], [a, b])).toBeNull();
  });

  it('rejects a half-applied write, a missing acknowledged write and foreign bytes', () => {
    expect(ok([1, 1, 0, 0, 0, 0, 0, 0])).toMatch(/byte 0 holds 1: not the 0 before/);
    expect(ok([1, 1, 1, 1, 0, 0, 0, 0], [a, b])).toMatch(/acknowledged write #2/);
    // a lost copy-up: b landed on the block as it was before a, wiping a's first bytes
    expect(ok([0, 0, 2, 2, 2, 2, 0, 0], [a, b])).toMatch(/acknowledged write #1/);
    expect(ok([0, 0, 0, 0, 0, 0, 0, 9])).toMatch(/byte 7 holds 9/);
  });
});

const MODES: CrashMode[] = ['drop-unflushed', 'keep-unflushed', 'random'];

describe('concurrent writers against the model (no crash)', () => {
  const seeds = LONG ? Array.from({ length: 40 }, (_, i) => 100 + i) : [101, 102, 103, 104];
  for (const seed of seeds) {
    it(`seed ${seed}: 60 rounds of 2-16 concurrent writes with reads and flushes among them; then a power loss keeps every acknowledged flush`, async () => {
      for (const mode of MODES) {
        const inner = new MemoryNamespace();
        const ctl = new FaultController({ seed });
        const out = await runConcurrentWorkload(new TraceNamespace(new FaultNamespace(inner, ctl), FLUSH_TURNS), seed, { rounds: 60, close: false });
        expect(out.error).toBeNull();
        expect(out.problems).toEqual([]);
        expect(out.stats.rounds).toBe(60);
        // the workload did what it says: writes of every kind, flushes and reads among them
        for (const k of ['writes', 'zeroes', 'ranges', 'reads', 'flushes', 'chained', 'roundSnapshots']) expect(out.stats[k], k).toBeGreaterThan(0);
        await ctl.crash(mode);
        expect(await verifyConcurrentRecovered(copyNamespace(inner), out, false)).toBeNull();
        expect(await verifyConcurrentRecovered(inner, out, true)).toBeNull();
      }
    }, 600_000);
  }
});
