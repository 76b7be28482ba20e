import { describe, expect, it } from 'vitest';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { enableJournal, openJournaled } from '../../../src/journal/open.js';
import { foldLog, retentionPoint } from '../../../src/journal/checkpoint.js';
import { prng } from '../../../src/bench/prng.js';
import { FaultController, FaultNamespace } from '../../../src/store/fault.js';

const BS = 4096;
const SIZE = 64 * BS;

/** A journaled volume with small segments, a seeded workload, and the model at every flush. */
async function history(ns: MemoryNamespace | FaultNamespace, seed: number, steps: number) {
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  const j = await enableJournal(v, ns, '');
  j.log.segmentBytes = 16 * 1024;
  const model = new Uint8Array(SIZE);
  const points = new Map<number, Uint8Array>([[-1, model.slice()]]);
  const rnd = prng(seed);
  for (let i = 0; i < steps; i++) {
    const len = 1 + Math.floor(rnd() * 3 * BS);
    const off = Math.floor(rnd() * (SIZE - len));
    const d = new Uint8Array(len).fill(1 + (i % 250));
    await v.write(off, d);
    model.set(d, off);
    if (i % 3 === 2) {
      await v.flush();
      points.set(j.status().lastFlush, model.slice());
    }
  }
  return { v, j, model, points };
}

const point = (seq: number): string => (seq < 0 ? 'base' : `seq:${seq}`);

describe('checkpoints: folding the oldest part of the log', () => {
  it('later points read the same after a fold and after reopening; folded points are out of range; segments are gone', async () => {
    const ns = new MemoryNamespace();
    const { v, j, points } = await history(ns, 5, 120);
    expect(j.log.segmentList().length).toBeGreaterThan(3);
    const seqs = [...points.keys()].sort((a, b) => a - b);
    const target = seqs[Math.floor(seqs.length / 2)]!;
    const before = (await ns.list()).filter((n) => n.startsWith('journal.')).length;
    const r = await foldLog(j, point(target));
    expect(r.c).not.toBeNull();
    expect(r.c!).toBeLessThanOrEqual(target);
    expect(r.bytesAfter).toBeLessThan(r.bytesBefore);
    expect((await ns.list()).filter((n) => /^journal\.[0-9]+\.log$/.test(n)).length).toBeLessThan(before);
    const check = async (jj: typeof j): Promise<void> => {
      for (const [seq, m] of points) {
        if (seq < r.c!) {
          // 'base' now names the fold point; a folded seq is out of range
          if (seq >= 0) expect(() => jj.view(point(seq)), `seq ${seq} was folded`).toThrow(expect.objectContaining({ code: 'out-of-range' }));
          continue;
        }
        expect(Buffer.from(await jj.view(point(seq)).read(0, SIZE)).equals(Buffer.from(m)), `view at ${seq}`).toBe(true);
      }
      // the oldest point now is the fold
      expect(jj.resolve('base')).toBe(r.c);
    };
    await check(j);
    // writes go on after a fold; fold again, further
    await v.write(0, new Uint8Array(BS).fill(0xee));
    await v.flush();
    await v.close();
    const { volume, journal } = await openJournaled(ns);
    await check(journal!);
    const r2 = await foldLog(journal!, 'latest');
    expect(r2.c!).toBeGreaterThan(r.c!);
    expect((await journal!.view('latest').read(0, BS))[0]).toBe(0xee);
    await volume.close();
  });

  it('a crash at any store write during a fold leaves every kept point reading the same', async () => {
    const attempt = async (k: number | null, mode: 'drop-unflushed' | 'keep-unflushed' | 'random') => {
      const inner = new MemoryNamespace();
      const ctl = new FaultController({ seed: 77 + (k ?? 0), tear: 'sectors', sectorSize: 512 });
      const ns = new FaultNamespace(inner, ctl);
      const { v, j, points } = await history(ns, 9, 60);
      const seqs = [...points.keys()].sort((a, b) => a - b);
      const target = seqs[Math.floor(seqs.length * 0.6)]!;
      const w0 = ctl.writes;
      if (k !== null) ctl.plan = { ...ctl.plan, crashAt: w0 + k };
      let crashed = false;
      try {
        await foldLog(j, point(target));
      } catch (e) {
        if (ctl.plan.crashAt === undefined) throw e;
        crashed = true;
      }
      const writes = ctl.writes - w0;
      if (crashed) await ctl.crash(mode);
      else await v.close();
      return { inner, points, writes, crashed };
    };
    const clean = await attempt(null, 'drop-unflushed');
    expect(clean.writes).toBeGreaterThan(2);
    const modes = ['drop-unflushed', 'keep-unflushed', 'random'] as const;
    let crashes = 0;
    for (let k = 0; k < clean.writes; k++) {
      const o = await attempt(k, modes[k % 3]!);
      if (!o.crashed) continue;
      crashes++;
      const { volume, journal } = await openJournaled(o.inner);
      const oldest = journal!.resolve('base');
      for (const [seq, m] of o.points) {
        if (seq < oldest) continue;
        expect(Buffer.from(await journal!.view(point(seq)).read(0, SIZE)).equals(Buffer.from(m)), `crash at fold write ${k}: view at ${seq}`).toBe(true);
      }
      await volume.close();
    }
    expect(crashes).toBeGreaterThan(2);
  });

  it('retention points: by bytes keeps the newest segments; by age the records older than the limit', async () => {
    const ns = new MemoryNamespace();
    const { v, j } = await history(ns, 3, 90);
    const segs = j.log.segmentList();
    const total = segs.reduce((n, s) => n + s.bytes, 0);
    const c = retentionPoint(j, { keepBytes: Math.floor(total / 2) });
    expect(c).not.toBeNull();
    expect(retentionPoint(j, { keepBytes: total * 2 })).toBeNull();
    expect(retentionPoint(j, { keepMs: 0, now: Date.now() + 1000 })).toBe(j.status().lastFlush);
    await v.close();
  });
});
