import { describe, expect, it } from 'vitest';
import { prng } from '../../../src/bench/prng.js';
import { isStrataError } from '../../../src/errors.js';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryBacking, MemoryNamespace } from '../../../src/store/memory.js';
import { PAGE_BITS } from '../../../src/replication/bitmap-pages.js';
import { OutOfSync } from '../../../src/replication/out-of-sync.js';

/**
 * Crash at every store write of a seeded workload on an out-of-sync bitmap (marks, clears,
 * markAll, persists with appends and compactions, clean reopens), in four tear/crash modes.
 * After the crash the bitmap must open and hold exactly the state of the last persist that
 * resolved or of the one under way: so no block dirty at a completed persist and not cleared
 * since is lost (the secondary would silently miss it), and nothing never marked is dirty.
 */
const LONG = process.env.STRATADISK_LONG === '1';
const BS = 4096;
const BLOCKS = 2 * PAGE_BITS + 77;
const GEOMETRY = { size: BLOCKS * BS, blockSize: BS };
const MODES: [CrashMode, TearMode][] = [
  ['drop-unflushed', 'prefix'],
  ['keep-unflushed', 'sectors'],
  ['random', 'sectors'],
  ['keep-unflushed', 'none'],
];

interface Outcome {
  crashed: boolean;
  opened: boolean;
  /** state of the last persist that resolved */
  committed: Uint8Array;
  /** state of the persist (or close) under way at the crash */
  pending: Uint8Array | null;
}

function key(m: Uint8Array): string {
  const out: number[] = [];
  for (let b = 0; b < m.length; b++) if (m[b]) out.push(b);
  return out.join(',');
}

function runsKey(runs: number[]): string {
  const out: number[] = [];
  for (let i = 0; i < runs.length; i += 2) for (let b = runs[i]!; b < runs[i]! + runs[i + 1]!; b++) out.push(b);
  return out.join(',');
}

async function workload(ns: FaultNamespace, seed: number, steps: number): Promise<Outcome> {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const model = new Uint8Array(BLOCKS);
  const out: Outcome = { crashed: false, opened: false, committed: model.slice(), pending: null };
  const run = (): number[] => {
    const len = rnd() < 0.7 ? 1 + int(5) : 1 + int(PAGE_BITS + 100);
    const first = rnd() < 0.2 ? Math.max(0, PAGE_BITS - int(len)) : int(BLOCKS);
    return [first, Math.min(len, BLOCKS - first)];
  };
  try {
    let oos = await OutOfSync.open(ns, 'r.oos', GEOMETRY, { compactMinBytes: 0 });
    out.opened = true;
    for (let i = 0; i < steps; i++) {
      const r = rnd();
      if (r < 0.45) {
        const runs = [...run(), ...run()];
        oos.markRuns(runs);
        for (let k = 0; k < runs.length; k += 2) model.fill(1, runs[k]!, runs[k]! + runs[k + 1]!);
      } else if (r < 0.75) {
        const runs = run();
        oos.clearRuns(runs);
        model.fill(0, runs[0]!, runs[0]! + runs[1]!);
      } else if (r < 0.77) {
        oos.markAll();
        model.fill(1);
      } else if (r < 0.95) {
        out.pending = model.slice();
        await oos.persist();
        out.committed = out.pending;
        out.pending = null;
      } else {
        out.pending = model.slice();
        await oos.close();
        oos = await OutOfSync.open(ns, 'r.oos', GEOMETRY, { compactMinBytes: 0 });
        out.committed = out.pending;
        out.pending = null;
      }
    }
    out.pending = model.slice();
    await oos.close();
    out.committed = out.pending;
    out.pending = null;
  } catch (e) {
    if (!isStrataError(e, 'io')) throw e;
    out.crashed = true;
  }
  return out;
}

function copyNamespace(ns: MemoryNamespace): MemoryNamespace {
  const files = new Map<string, MemoryBacking>();
  for (const [name, b] of ns.files) files.set(name, new MemoryBacking(b.contents()));
  return new MemoryNamespace({ files });
}

describe('OutOfSync crash sweep', () => {
  const seeds = LONG ? [11, 12, 13, 14, 15, 16] : [11, 12];
  const steps = LONG ? 300 : 80;
  for (const [mode, tear] of MODES) {
    it(`${mode} / tear ${tear}: every crash point reopens to the last completed persist or the one under way`, async () => {
      let points = 0;
      for (const seed of seeds) {
        const counter = new FaultController();
        const dry = await workload(new FaultNamespace(new MemoryNamespace(), counter), seed, steps);
        expect(dry.crashed).toBe(false);
        const total = counter.writes;
        expect(total).toBeGreaterThan(20);
        for (let at = 0; at < total; at++) {
          const inner = new MemoryNamespace();
          const ctl = new FaultController({ crashAt: at, tear, seed: seed * 1000 + at });
          const o = await workload(new FaultNamespace(inner, ctl), seed, steps);
          expect(o.crashed, `crash at ${at}`).toBe(true);
          await ctl.crash(mode);
          const ns = copyNamespace(inner);
          let got: string;
          try {
            const oos = await OutOfSync.open(ns, 'r.oos', GEOMETRY);
            got = runsKey(oos.runs());
            expect(oos.dirtyBlocks).toBe(got === '' ? 0 : got.split(',').length);
          } catch (e) {
            // Only a bitmap whose creation never completed may be unreadable.
            if (!o.opened && isStrataError(e, 'corrupt')) continue;
            throw e;
          }
          const want = [key(o.committed), ...(o.pending ? [key(o.pending)] : [])];
          expect(want, `seed ${seed} crash at ${at} (${mode}, ${tear})`).toContain(got);
          points++;
        }
      }
      expect(points).toBeGreaterThan(40);
    }, 600_000);
  }
});
