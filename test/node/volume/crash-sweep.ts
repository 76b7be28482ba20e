import { expect } from 'vitest';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { copyNamespace, runWorkload, verifyRecovered } from './workload.js';

export const LONG = process.env.STRATADISK_LONG === '1';

const MODES: [CrashMode, TearMode][] = [
  ['keep-unflushed', 'prefix'],
  ['drop-unflushed', 'sectors'],
  ['random', 'sectors'],
  ['keep-unflushed', 'sectors'],
];

/**
 * Crash the workload at every mutating store call k (with k % shards === shard), tear that
 * call, apply the crash mode, then reopen read-only (no repair) and writable (repair) and check
 * the recovered state. Returns the number of crash points checked.
 */
export async function crashSweep(seed: number, steps: number, shard: number, shards: number): Promise<number> {
  const probe = new FaultController({});
  const clean = await runWorkload(new FaultNamespace(new MemoryNamespace(), probe), seed, steps);
  expect(clean.crashed).toBe(false);
  const total = probe.writes;
  expect(total).toBeGreaterThan(steps);
  return sweepCrashPoints(total, shard, shards, 1, (k) => MODES[Math.floor(k / shards) % MODES.length]!, async (k, mode, tear) => {
    const inner = new MemoryNamespace();
    const ctl = new FaultController({ crashAt: k, tear, seed: seed * 100_003 + k, sectorSize: 512 });
    const outcome = await runWorkload(new FaultNamespace(inner, ctl), seed, steps);
    expect(outcome.crashed).toBe(true);
    await ctl.crash(mode);
    return (await verifyRecovered(copyNamespace(inner), outcome, false)) ?? (await verifyRecovered(inner, outcome, true));
  });
}

/**
 * The loop every crash sweep shares: for each crash point k (k = (shard + i*shards) * stride
 * below total), run `attempt` with the crash and tear modes `modeOf(k)` picked; it returns a
 * problem, null when all is well, or undefined when k turned out not to be a crash point (not
 * counted); a throw counts as a problem. Stops after 5 failures, asserts there were
 * none, and returns how many points were checked.
 */
export async function sweepCrashPoints(
  total: number,
  shard: number,
  shards: number,
  stride: number,
  modeOf: (k: number) => [CrashMode, TearMode],
  attempt: (k: number, mode: CrashMode, tear: TearMode) => Promise<string | null | undefined>,
): Promise<number> {
  const failures: string[] = [];
  let checked = 0;
  for (let k = shard * stride; k < total; k += shards * stride) {
    const [mode, tear] = modeOf(k);
    let problem: string | null | undefined;
    try {
      problem = await attempt(k, mode, tear);
    } catch (e) {
      problem = `threw ${String(e)}`;
    }
    if (problem === undefined) continue;
    checked++;
    if (problem) failures.push(`crash at write ${k}/${total} (${mode}, ${tear}): ${problem}`);
    if (failures.length >= 5) break;
  }
  expect(failures).toEqual([]);
  return checked;
}
