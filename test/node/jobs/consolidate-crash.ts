import { expect } from 'vitest';
import { consolidate } from '../../../src/jobs/consolidate.js';
import { resumeJobs } from '../../../src/jobs/resume.js';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';
import { sweepCrashPoints } from '../volume/crash-sweep.js';
import { copyNamespace } from '../volume/workload.js';
import { BLOCKS, BS, SIZE, buildChain, same, type Model } from './consolidate-helpers.js';

export const LONG = process.env.STRATADISK_LONG === '1';

const MODES: [CrashMode, TearMode][] = [
  ['keep-unflushed', 'prefix'],
  ['drop-unflushed', 'sectors'],
  ['random', 'sectors'],
];

export interface Scenario {
  seed: number;
  /** snapshot to delete: s2 is the active layer's parent, s1 a middle layer */
  name: 's1' | 's2';
  direction: 'down' | 'up';
}

/** What a run tells the checker: the snapshots, and per block the values the live view may hold. */
interface Trace {
  crashed: boolean;
  snaps: Map<string, Uint8Array>;
  /** per block: values acceptable after a crash (the durable one, and every one written since) */
  allowed: Uint8Array[][];
  final: Uint8Array;
}

/** Set up the chain (no faults) and return its image and model. */
async function setup(seed: number): Promise<{ image: MemoryNamespace; model: Model }> {
  const image = new MemoryNamespace();
  const { vol, model } = await buildChain(image, new Rng(seed));
  await vol.close();
  return { image, model };
}

/** Consolidate while a writer writes whole blocks and flushes; stops at the first error (the crash). */
async function run(ns: FaultNamespace, s: Scenario, model: Model): Promise<Trace> {
  const rng = new Rng(s.seed * 31 + 1);
  const live = model.live.slice();
  const allowed: Uint8Array[][] = [];
  for (let b = 0; b < BLOCKS; b++) allowed.push([live.slice(b * BS, (b + 1) * BS)]);
  const trace: Trace = { crashed: false, snaps: new Map(model.snaps), allowed, final: live };
  let vol: Volume | undefined;
  try {
    vol = await Volume.open(ns);
    const job = consolidate(vol, { op: 'delete-snapshot', name: s.name }, { direction: s.direction, batchBytes: 3 * BS, flushEvery: 6 * BS, journal: true });
    let finished = false;
    let failed: unknown = null;
    const end = job.done.then(
      () => void (finished = true),
      (e) => {
        finished = true;
        failed = e;
      },
    );
    let pendingFlush: Uint8Array[] | null = null;
    for (let i = 0; i < 60 && !(finished && i > 20); i++) {
      if (i % 5 === 4) {
        // a flush: once it completes, only what was live at its start (or later) is acceptable
        pendingFlush = [];
        for (let b = 0; b < BLOCKS; b++) pendingFlush.push(live.slice(b * BS, (b + 1) * BS));
        await vol.flush();
        for (let b = 0; b < BLOCKS; b++) {
          const cur = pendingFlush[b]!;
          const list = allowed[b]!;
          const at = list.findIndex((x) => same(x, cur));
          allowed[b] = list.slice(at);
        }
        continue;
      }
      const n = rng.pick([1, 1, 2]);
      const first = rng.int(BLOCKS - n + 1);
      const data = rng.next() < 0.15 ? new Uint8Array(n * BS) : rng.bytes(n * BS, 7000 + i);
      for (let k = 0; k < n; k++) allowed[first + k]!.push(data.slice(k * BS, (k + 1) * BS));
      await vol.write(first * BS, data);
      live.set(data, first * BS);
    }
    await end;
    if (failed) throw failed;
    await vol.close();
  } catch {
    trace.crashed = true;
  }
  return trace;
}

/** Returns the first problem with the reopened image, or null. */
async function verify(ns: MemoryNamespace, s: Scenario, t: Trace, writable: 'no' | 'open' | 'resume'): Promise<string | null> {
  const vol = await Volume.open(ns, { readOnly: writable === 'no', deferMerges: writable === 'resume' });
  try {
    const names = vol.snapshots().map((x) => x.name).sort();
    const all = [...t.snaps.keys()].sort();
    const without = all.filter((n) => n !== s.name);
    if (names.join() !== all.join() && names.join() !== without.join()) return `snapshots [${names}]`;
    for (const n of names) if (!same(await vol.openSnapshot(n).read(0, SIZE), t.snaps.get(n)!)) return `snapshot ${n} changed`;
    const live = await vol.read(0, SIZE);
    for (let b = 0; b < BLOCKS; b++) {
      const got = live.subarray(b * BS, (b + 1) * BS);
      if (!t.allowed[b]!.some((x) => same(x, got))) return `block ${b} holds a value never written or older than a completed flush`;
    }
    if (writable !== 'no') {
      // the job can finish: resumed online, or (after a plain open) already finished
      if (writable === 'resume') await resumeJobs(vol, { batchBytes: 2 * BS });
      if (names.includes(s.name)) {
        const job = consolidate(vol, { op: 'delete-snapshot', name: s.name }, { direction: s.direction });
        await job.done;
      }
      if (vol.snapshots().some((x) => x.name === s.name)) return 'snapshot still there after the job';
      if (vol.info().layers.length !== 3) return `expected 3 layers after consolidation, found ${vol.info().layers.length}`;
      if (!same(await vol.read(0, SIZE), live)) return 'live view changed by the resumed job';
      for (const n of without) if (!same(await vol.openSnapshot(n).read(0, SIZE), t.snaps.get(n)!)) return `snapshot ${n} changed by the resumed job`;
      const report = await vol.check();
      if (!report.ok) return `check: ${report.problems[0]!.message}`;
    }
    return null;
  } finally {
    await vol.close();
  }
}

/** Crash at every mutating store call (k % shards === shard) of the job + writer run. */
export async function consolidationCrashSweep(s: Scenario, shard: number, shards: number, stride = 1): Promise<number> {
  const { image, model } = await setup(s.seed);
  const probe = new FaultController({});
  const clean = await run(new FaultNamespace(copyNamespace(image), probe), s, model);
  expect(clean.crashed).toBe(false);
  const total = probe.writes;
  return sweepCrashPoints(total, shard, shards, stride, (k) => MODES[k % MODES.length]!, async (k, mode, tear) => {
    const inner = copyNamespace(image);
    const ctl = new FaultController({ crashAt: k, tear, seed: s.seed * 1009 + k, sectorSize: 512 });
    const t = await run(new FaultNamespace(inner, ctl), s, model);
    if (!t.crashed) return undefined;
    await ctl.crash(mode);
    return (await verify(copyNamespace(inner), s, t, 'no')) ?? (await verify(k % 2 === 0 ? inner : copyNamespace(inner), s, t, k % 2 === 0 ? 'open' : 'resume'));
  });
}
