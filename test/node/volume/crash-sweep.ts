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
  const failures: string[] = [];
  let checked = 0;
  for (let k = shard; k < total; k += shards) {
    const [mode, tear] = MODES[Math.floor(k / shards) % MODES.length]!;
    const inner = new MemoryNamespace();
    const ctl = new FaultController({ crashAt: k, tear, seed: seed * 100_003 + k, sectorSize: 512 });
    const outcome = await runWorkload(new FaultNamespace(inner, ctl), seed, steps);
    expect(outcome.crashed).toBe(true);
    await ctl.crash(mode);
    let problem: string | null = null;
    try {
      problem = (await verifyRecovered(copyNamespace(inner), outcome, false)) ?? (await verifyRecovered(inner, outcome, true));
    } catch (e) {
      problem = `reopen threw ${String(e)}`;
    }
    checked++;
    if (problem) failures.push(`crash at write ${k}/${total} (${mode}, ${tear}): ${problem}`);
    if (failures.length >= 5) break;
  }
  expect(failures).toEqual([]);
  return checked;
}
