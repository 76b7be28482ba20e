import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prng } from '../../../src/bench/prng.js';
import { StrataError } from '../../../src/errors.js';
import { diffBlocks, diffPoints, type DiffExtent, type DiffPoint } from '../../../src/journal/diff.js';
import { foldLog } from '../../../src/journal/checkpoint.js';
import { enableJournal, openJournaled } from '../../../src/journal/open.js';
import type { Journal } from '../../../src/journal/journal.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';

const BS = 4096;
const BLOCKS = 48;
// the last block is partial
const SIZE = BLOCKS * BS - 1000;

/** A point with the bytes the model says it holds. */
interface Known {
  point: DiffPoint;
  name: string;
  bytes: Uint8Array;
}

/** Every byte where `x` and `y` differ lies inside one of `extents`; extents are ascending, merged, inside the volume. */
function expectCovers(extents: DiffExtent[], x: Uint8Array, y: Uint8Array, what: string): void {
  for (let i = 1; i < extents.length; i++) {
    if (!(extents[i]!.offset > extents[i - 1]!.offset + extents[i - 1]!.length)) throw new Error(`${what}: extents not ascending and merged: ${JSON.stringify(extents)}`);
  }
  for (const e of extents) if (!(e.length > 0 && e.offset >= 0 && e.offset + e.length <= SIZE)) throw new Error(`${what}: extent ${JSON.stringify(e)} is empty or outside the volume`);
  let k = 0;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === y[i]) continue;
    while (k < extents.length && extents[k]!.offset + extents[k]!.length <= i) k++;
    const e = extents[k];
    if (!e || e.offset > i) throw new Error(`${what}: byte ${i} differs (${x[i]} vs ${y[i]}) but no extent covers it: ${JSON.stringify(extents)}`);
  }
}

/** Random writes, partial and whole, zeroes, flushes; calls `after(seq)` after each logged op. */
async function randomOps(v: Volume, model: Uint8Array, rnd: () => number, count: number, after: () => void): Promise<Set<number>> {
  const touched = new Set<number>();
  for (let i = 0; i < count; i++) {
    const r = rnd();
    const offset = Math.floor(rnd() * SIZE);
    const length = Math.max(1, Math.min(SIZE - offset, Math.floor(rnd() * (r < 0.3 ? 3 * BS : 300))));
    if (r < 0.15) {
      await v.writeZeroes(offset, length);
      model.fill(0, offset, offset + length);
    } else if (r < 0.25) {
      // a whole-block write
      const b = Math.floor(rnd() * (BLOCKS - 1));
      const data = new Uint8Array(BS).fill(1 + Math.floor(rnd() * 255));
      await v.write(b * BS, data);
      model.set(data, b * BS);
      touched.add(b);
      after();
      continue;
    } else {
      const data = new Uint8Array(length);
      for (let k = 0; k < length; k++) data[k] = Math.floor(rnd() * 256);
      await v.write(offset, data);
      model.set(data, offset);
    }
    for (let b = Math.floor(offset / BS); b * BS < offset + length; b++) touched.add(b);
    if (rnd() < 0.2) await v.flush();
    after();
  }
  return touched;
}

describe('diff between points (changed-block tracking)', () => {
  it('between log points, snapshots and the live volume: every differing byte is in a reported extent (seeded random workloads)', async () => {
    for (let seed = 1; seed <= 4; seed++) {
      const rnd = prng(seed * 7919);
      const ns = new MemoryNamespace();
      const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
      const model = new Uint8Array(SIZE);
      // data before the log begins, and a snapshot under the log's base
      await randomOps(v, model, rnd, 10, () => {});
      await v.snapshot('before');
      const known: Known[] = [{ point: { snapshot: 'before' }, name: 'before', bytes: model.slice() }];
      await randomOps(v, model, rnd, 5, () => {});
      const j = await enableJournal(v, ns, '');
      known.push({ point: { log: 'base' }, name: 'base', bytes: model.slice() });
      // log points after every op (resolved later, once flushed), marks and snapshots between rounds
      const bySeq: { seq: number; bytes: Uint8Array }[] = [];
      for (let round = 0; round < 4; round++) {
        await randomOps(v, model, rnd, 12, () => bySeq.push({ seq: j.status().lastSeq, bytes: model.slice() }));
        await j.mark(`m${round}`);
        known.push({ point: { log: `mark:m${round}` }, name: `mark:m${round}`, bytes: model.slice() });
        if (round % 2 === 1) {
          await v.snapshot(`s${round}`);
          known.push({ point: { snapshot: `s${round}` }, name: `s${round}`, bytes: model.slice() });
        }
      }
      // unflushed writes on the live volume (logged, not yet flushed)
      await randomOps(v, model, rnd, 4, () => {});
      const lastFlush = j.status().lastFlush;
      for (const s of bySeq) if (s.seq <= lastFlush && rnd() < 0.2) known.push({ point: { log: `seq:${s.seq}` }, name: `seq:${s.seq}`, bytes: s.bytes });
      known.push({ point: 'live', name: 'live', bytes: model.slice() });
      expect(Buffer.from(await v.read(0, SIZE)).equals(model)).toBe(true);

      const check = (vol: Volume, jr: Journal, tag: string) => {
        for (const x of known) {
          for (const y of known) {
            const what = `seed ${seed} ${tag}: ${x.name} vs ${y.name}`;
            expectCovers(diffPoints(vol, jr, x.point, y.point), x.bytes, y.bytes, what);
          }
        }
      };
      check(v, j, 'writable log');
      // between two log points exactly the blocks written between them (here: every logged op is a write or zeroes)
      const m0 = j.resolve('mark:m0');
      const m3 = j.resolve('mark:m3');
      expect([...diffBlocks(v, j, { log: 'mark:m0' }, { log: 'mark:m3' }).blocks]).toEqual(j.blocksChanged(m0, m3));

      // the same answers (supersets) from a read-only open of the log
      await v.close();
      const ro = await openJournaled(ns, { readOnly: true });
      known[known.length - 1]!.bytes = await ro.volume.read(0, SIZE);
      check(ro.volume, ro.journal!, 'read-only log');
      expect(diffBlocks(ro.volume, ro.journal, { log: 'mark:m1' }, 'live').basis).toBe('log+layers');
      await ro.journal!.close();
      await ro.volume.close();
    }
  });

  it('a read-only log over a volume that lags its last flush (a crash before the volume recorded it): live vs a log point still covers the difference', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stratadisk-jdiff-'));
    try {
      const vol = join(dir, 'v');
      const ns = new NodeDirNamespace(vol, { create: true });
      const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
      await v.write(0, new Uint8Array(BS).fill(1));
      const j = await enableJournal(v, ns, '');
      await v.write(2 * BS, new Uint8Array(BS).fill(2));
      await j.mark('one');
      // the volume's own files as they are at this flush
      const saved = join(dir, 'saved');
      cpSync(vol, saved, { recursive: true });
      await v.write(4 * BS, new Uint8Array(BS).fill(4));
      await v.write(0, new Uint8Array(10).fill(5));
      await j.mark('two');
      await v.close();
      // the crash: the log kept flush two, the volume's files only reached mark one
      for (const f of readdirSync(saved)) if (!f.startsWith('journal.')) cpSync(join(saved, f), join(vol, f));
      const ro = await openJournaled(new NodeDirNamespace(vol, { readOnly: true }), { readOnly: true });
      const live = await ro.volume.read(0, SIZE);
      const two = await ro.journal!.view('mark:two').read(0, SIZE);
      expect(Buffer.from(live).equals(two)).toBe(false);
      for (const [x, y] of [[{ log: 'mark:two' }, 'live'], ['live', { log: 'mark:two' }]] as [DiffPoint, DiffPoint][]) {
        expectCovers(diffPoints(ro.volume, ro.journal, x, y), live, two, 'lagging volume: mark:two vs live');
      }
      expectCovers(diffPoints(ro.volume, ro.journal, { log: 'mark:one' }, 'live'), live, await ro.journal!.view('mark:one').read(0, SIZE), 'lagging volume: mark:one vs live');
      await ro.journal!.close();
      await ro.volume.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('after a checkpoint (the oldest log folded into the base): the kept points, snapshots and live still diff as supersets', async () => {
    const rnd = prng(4242);
    const ns = new MemoryNamespace();
    const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
    const model = new Uint8Array(SIZE);
    await randomOps(v, model, rnd, 8, () => {});
    const j = await enableJournal(v, ns, '');
    j.log.segmentBytes = 2 * BS; // roll often, so that there are segment ends to fold to
    const known: Known[] = [];
    for (let round = 0; round < 6; round++) {
      await randomOps(v, model, rnd, 10, () => {});
      await j.mark(`m${round}`);
      known.push({ point: { log: `mark:m${round}` }, name: `mark:m${round}`, bytes: model.slice() });
      if (round === 2) {
        await v.snapshot('s2');
        known.push({ point: { snapshot: 's2' }, name: 's2', bytes: model.slice() });
      }
    }
    const folded = await foldLog(j, 'mark:m3');
    expect(folded.c).not.toBeNull();
    await randomOps(v, model, rnd, 6, () => {});
    known.push({ point: 'live', name: 'live', bytes: model.slice() });
    const kept = known.filter((k) => typeof k.point !== 'object' || !('log' in k.point) || j.marks().some((m) => `mark:${m.label}` === k.name));
    expect(kept.length).toBeLessThan(known.length);
    kept.push({ point: { log: 'base' }, name: 'base (the fold)', bytes: Buffer.from(await j.view('base').read(0, SIZE)) });
    for (const x of kept) {
      for (const y of kept) expectCovers(diffPoints(v, j, x.point, y.point), x.bytes, y.bytes, `after a fold: ${x.name} vs ${y.name}`);
    }
    await v.close();
    const ro = await openJournaled(ns, { readOnly: true });
    for (const x of kept) {
      for (const y of kept) expectCovers(diffPoints(ro.volume, ro.journal, x.point, y.point), x.bytes, y.bytes, `after a fold, read-only: ${x.name} vs ${y.name}`);
    }
    await ro.journal!.close();
    await ro.volume.close();
  });

  it('layers: a tree with reverts and a deleted snapshot (no log)', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const rnd = prng(seed * 104729);
      const ns = new MemoryNamespace();
      const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
      const model = new Uint8Array(SIZE);
      const known: Known[] = [];
      const states = new Map<string, Uint8Array>();
      for (let i = 0; i < 8; i++) {
        await randomOps(v, model, rnd, 6, () => {});
        const name = `s${i}`;
        await v.snapshot(name);
        states.set(name, model.slice());
        if (rnd() < 0.4 && i > 0) {
          // branch: continue from an earlier snapshot
          const back = `s${Math.floor(rnd() * i)}`;
          await v.revert(back);
          model.set(states.get(back)!);
        }
      }
      // merge one snapshot away; the others must read (and diff) as before
      await v.deleteSnapshot('s3');
      states.delete('s3');
      await randomOps(v, model, rnd, 6, () => {});
      for (const [name, bytes] of states) known.push({ point: { snapshot: name }, name, bytes });
      known.push({ point: 'live', name: 'live', bytes: model.slice() });
      for (const x of known) {
        expect(Buffer.from(await (x.point === 'live' ? v : v.openSnapshot(x.name)).read(0, SIZE)).equals(x.bytes), x.name).toBe(true);
        for (const y of known) expectCovers(diffPoints(v, null, x.point, y.point), x.bytes, y.bytes, `seed ${seed}: ${x.name} vs ${y.name}`);
      }
      expect(diffBlocks(v, null, 'live', 'live')).toMatchObject({ basis: 'same' });
      await v.close();
    }
  });

  it('layers between two snapshots: only what the layers between them hold', async () => {
    const ns = new MemoryNamespace();
    const v = await Volume.create(ns, { size: 1 << 30, blockSize: 65536 });
    await v.write(0, new Uint8Array(65536).fill(1));
    await v.snapshot('a');
    await v.write(5 * 65536, new Uint8Array(10).fill(2));
    // zeroes over data below: known-zero blocks (zeroes over nothing store nothing, and differ in nothing)
    await v.writeZeroes(0, 2 * 65536);
    await v.writeZeroes(7 * 65536, 2 * 65536);
    await v.snapshot('b');
    await v.write((1 << 30) - 65536, new Uint8Array(65536).fill(3));
    expect(diffPoints(v, null, { snapshot: 'a' }, { snapshot: 'b' })).toEqual([{ offset: 0, length: 65536 }, { offset: 5 * 65536, length: 65536 }]);
    expect(diffPoints(v, null, { snapshot: 'b' }, 'live')).toEqual([{ offset: (1 << 30) - 65536, length: 65536 }]);
    expect(diffBlocks(v, null, { snapshot: 'a' }, { snapshot: 'a' }).blocks.length).toBe(0);
    await v.close();
  });

  it('refuses log points without a log, and a log of another volume, with codes', async () => {
    const ns = new MemoryNamespace();
    const v = await Volume.create(ns, { size: 16 * BS, blockSize: BS });
    expect(() => diffPoints(v, null, { log: 'seq:1' }, 'live')).toThrow(StrataError);
    try {
      diffPoints(v, null, { log: 'mark:x' }, 'live');
    } catch (e) {
      expect((e as StrataError).code).toBe('not-found');
    }
    const ns2 = new MemoryNamespace();
    const w = await Volume.create(ns2, { size: 16 * BS, blockSize: BS });
    const j = await enableJournal(w, ns2, '');
    expect(() => diffPoints(v, j, 'live', { log: 'base' })).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(() => diffPoints(w, j, { log: 'mark:nope' }, 'live')).toThrow(expect.objectContaining({ code: 'not-found' }));
    expect(() => diffPoints(w, j, { log: 'seq:99' }, 'live')).toThrow(expect.objectContaining({ code: 'out-of-range' }));
    expect(() => diffPoints(w, j, { snapshot: 'nope' }, 'live')).toThrow(expect.objectContaining({ code: 'not-found' }));
    await v.close();
    await w.close();
  });
});
