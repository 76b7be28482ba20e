import { expect } from 'vitest';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { runConcurrentWorkload, verifyConcurrentRecovered, type ConcurrentOutcome } from './concurrent-workload.js';
import { TraceNamespace } from './trace-namespace.js';
import { sweepCrashPoints } from './crash-sweep.js';
import { copyNamespace } from './workload.js';

/** Store flushes take this many microtask turns (see TraceNamespace), so writes overtake them. */
export const FLUSH_TURNS = 100;

const MODES: [CrashMode, TearMode][] = [
  ['keep-unflushed', 'prefix'],
  ['drop-unflushed', 'sectors'],
  ['random', 'sectors'],
  ['keep-unflushed', 'sectors'],
];

/** A clean run of the concurrent workload: its outcome, mutating store calls, and a fingerprint of every store call. */
export async function cleanRun(seed: number, rounds: number): Promise<{ out: ConcurrentOutcome; writes: number; flushes: number; calls: number; hash: number }> {
  const ctl = new FaultController({});
  const trace = new TraceNamespace(new FaultNamespace(new MemoryNamespace(), ctl), FLUSH_TURNS);
  const out = await runConcurrentWorkload(trace, seed, { rounds });
  return { out, writes: ctl.writes, flushes: ctl.flushes, calls: trace.calls, hash: trace.hash };
}

/**
 * Crash the concurrent workload at mutating store call k for k = offset, offset + every, ...
 * (every = 1: all of them), tear that call, apply the crash mode, then reopen read-only (no
 * repair) and writable (repair) and check the recovered volume against the model. The clean
 * run is made twice and must make the same store calls both times (else crash point k would
 * not be the same call in every run). Returns the number of crash points checked.
 */
export async function concurrentCrashSweep(seed: number, rounds: number, offset: number, every: number): Promise<number> {
  const a = await cleanRun(seed, rounds);
  expect(a.out.error).toBeNull();
  expect(a.out.problems).toEqual([]);
  const b = await cleanRun(seed, rounds);
  expect({ writes: b.writes, flushes: b.flushes, calls: b.calls, hash: b.hash }).toEqual({ writes: a.writes, flushes: a.flushes, calls: a.calls, hash: a.hash });
  const total = a.writes;
  expect(total).toBeGreaterThan(rounds * 4);
  return sweepCrashPoints(total, offset % every, every, 1, (k) => MODES[Math.floor(k / every) % MODES.length]!, async (k, mode, tear) => {
    const inner = new MemoryNamespace();
    const ctl = new FaultController({ crashAt: k, tear, seed: seed * 100_003 + k, sectorSize: 512 });
    const out = await runConcurrentWorkload(new TraceNamespace(new FaultNamespace(inner, ctl), FLUSH_TURNS), seed, { rounds });
    if (!out.crashed) return `the run did not reach crash point ${k} (it made ${ctl.writes} store writes)`;
    // violations before the crash are the clean run's, which passed; a new one is a problem
    if (out.problems.length > 0) return `before the crash: ${out.problems[0]}`;
    await ctl.crash(mode);
    return (await verifyConcurrentRecovered(copyNamespace(inner), out, false)) ?? (await verifyConcurrentRecovered(inner, out, true));
  });
}
