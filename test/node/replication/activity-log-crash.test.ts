import { describe, expect, it } from 'vitest';
import { prng } from '../../../src/bench/prng.js';
import { isStrataError } from '../../../src/errors.js';
import { ActivityLog } from '../../../src/replication/activity-log.js';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryBacking, MemoryNamespace } from '../../../src/store/memory.js';

/**
 * Crash at every store write of a seeded workload on an activity log (concurrent enters of
 * new and hot extents, releases, evictions under a small maxExtents, clean reopens), in four
 * tear/crash modes. After the crash, `recovered` holds every extent of an enter that resolved
 * and was not released (the writes the secondary may lack), and no extent never entered.
 */
const LONG = process.env.STRATADISK_LONG === '1';
const BS = 4096;
const EXT = 64 * 1024;
const BPE = EXT / BS;
const EXTENTS = 24;
const GEOMETRY = { size: EXTENTS * EXT, blockSize: BS };
const MODES: [CrashMode, TearMode][] = [
  ['drop-unflushed', 'prefix'],
  ['keep-unflushed', 'sectors'],
  ['random', 'sectors'],
  ['keep-unflushed', 'none'],
];

interface Outcome {
  crashed: boolean;
  /** the first open resolved (before that, the log may be unreadable: corrupt) */
  opened: boolean;
  /** extents of resolved enters not released, in the session at the crash */
  required: Set<number>;
  entered: Set<number>;
}

function extentsOf(runs: number[]): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < runs.length; i += 2) for (let e = Math.floor(runs[i]! / BPE); e <= Math.floor((runs[i]! + runs[i + 1]! - 1) / BPE); e++) out.add(e);
  return out;
}

async function workload(ns: FaultNamespace, seed: number, steps: number): Promise<Outcome> {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const out: Outcome = { crashed: false, opened: false, required: new Set(), entered: new Set() };
  /** token -> extents of the enter that resolved with it, this session */
  let resolved = new Map<number, Set<number>>();
  let released = 0;
  const required = (): Set<number> => {
    const s = new Set<number>();
    for (const [t, ex] of resolved) if (t > released) for (const e of ex) s.add(e);
    return s;
  };
  const open = () => ActivityLog.open(ns, 'r.al', GEOMETRY, { extentBytes: EXT, maxExtents: 8 });
  try {
    let al = await open();
    out.opened = true;
    for (let i = 0; i < steps; i++) {
      const r = rnd();
      if (r < 0.7) {
        // never more in use than leaves room for this group (up to 4 extents): a group waiting for
        // a slot that only its own release would free would wait for ever
        if (required().size > 4) {
          released = Math.max(released, ...resolved.keys());
          al.releaseUpTo(released);
          out.required = required(); // before the enters below, which may crash
        }
        const group: number[][] = [];
        for (let k = 1 + int(2); k > 0; k--) {
          const first = int(EXTENTS * BPE - 2 * BPE);
          group.push(rnd() < 0.3 ? [first, 1 + int(BPE + 1)] : [first, 1]);
        }
        for (const runs of group) for (const e of extentsOf(runs)) out.entered.add(e);
        const tokens = await Promise.all(group.map((runs) => al.enter(runs)));
        tokens.forEach((t, k) => resolved.set(t, extentsOf(group[k]!)));
      } else if (r < 0.95) {
        const tokens = [...resolved.keys()];
        if (tokens.length) {
          released = Math.max(released, tokens[int(tokens.length)]!);
          al.releaseUpTo(released);
        }
      } else {
        out.required = required();
        await al.close();
        al = await open();
        const rec = extentsOf(al.recovered as number[]);
        for (const e of out.required) expect(rec.has(e), `extent ${e} after a clean close`).toBe(true);
        resolved = new Map();
        released = 0;
      }
      out.required = required();
    }
    await al.close();
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

describe('ActivityLog crash sweep', () => {
  const seeds = LONG ? [21, 22, 23, 24, 25, 26] : [21, 22];
  const steps = LONG ? 300 : 100;
  for (const [mode, tear] of MODES) {
    it(`${mode} / tear ${tear}: every extent entered and not released is recovered`, async () => {
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
          let al: ActivityLog;
          try {
            al = await ActivityLog.open(copyNamespace(inner), 'r.al', GEOMETRY, { extentBytes: EXT });
          } catch (e) {
            if (!o.opened && isStrataError(e, 'corrupt')) continue;
            throw e;
          }
          const rec = extentsOf(al.recovered as number[]);
          for (const e of o.required) expect(rec.has(e), `seed ${seed} crash at ${at}: extent ${e} (${mode}, ${tear})`).toBe(true);
          for (const e of rec) expect(o.entered.has(e), `extent ${e} was never entered`).toBe(true);
          points++;
        }
      }
      expect(points).toBeGreaterThan(40);
    }, 180_000);
  }
});
