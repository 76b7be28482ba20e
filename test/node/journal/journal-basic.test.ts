import { describe, expect, it } from 'vitest';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { enableJournal, openJournaled, disableJournal } from '../../../src/journal/open.js';
import { restoreTo } from '../../../src/journal/restore.js';

const BS = 4096;
const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

async function journaled() {
  const ns = new MemoryNamespace();
  const v = await Volume.create(ns, { size: 64 * BS, blockSize: BS });
  await v.write(0, fill(BS, 1));
  const j = await enableJournal(v, ns, '');
  return { ns, v, j };
}

describe('write log (journal mode)', () => {
  it('views at marks, seqs and the base read what the volume held then', async () => {
    const { ns, v, j } = await journaled();
    await v.write(0, fill(100, 2)); // partial
    await v.write(BS, fill(2 * BS, 3)); // whole blocks
    const m1 = await j.mark('one');
    await v.write(50, fill(10, 4));
    await v.writeZeroes(BS, BS);
    const m2 = await j.mark('two');
    const at = async (p: string, off: number, len: number) => j.view(p).read(off, len);
    expect((await at('base', 0, 4))).toEqual(fill(4, 1));
    expect((await at('mark:one', 0, 100))).toEqual(fill(100, 2));
    expect((await at('mark:one', 100, 4))).toEqual(fill(4, 1));
    expect((await at('mark:one', BS, 8))).toEqual(fill(8, 3));
    const two = await at('mark:two', 0, 2 * BS);
    expect(two.subarray(50, 60)).toEqual(fill(10, 4));
    expect(two.subarray(BS, 2 * BS)).toEqual(fill(BS, 0));
    expect(await at('latest', 0, 3 * BS)).toEqual(await v.read(0, 3 * BS));
    expect(m2.point).toBeGreaterThan(m1.point);
    expect(j.marks().map((m) => m.label)).toEqual(['one', 'two']);
    // reopen: the same views
    await v.close();
    const { volume, journal } = await openJournaled(ns);
    expect(journal).not.toBeNull();
    expect(await journal!.view('mark:one').read(0, 100)).toEqual(fill(100, 2));
    expect(journal!.marks().length).toBe(2);
    // restore to mark one, then undo the restore
    const r = await restoreTo(journal!, 'mark:one');
    expect(r.blocks).toBe(2);
    expect(await volume.read(0, 100)).toEqual(fill(100, 2));
    expect(await volume.read(BS, 8)).toEqual(fill(8, 3));
    await restoreTo(journal!, `mark:${r.undo}`);
    expect((await volume.read(0, 2 * BS)).subarray(BS, 2 * BS)).toEqual(fill(BS, 0));
    await volume.close();
  });

  it('a journaled volume refuses a writer without the log; read-only opens work', async () => {
    const { ns, v } = await journaled();
    await v.close();
    await expect(Volume.open(ns)).rejects.toMatchObject({ code: 'unsupported' });
    const ro = await Volume.open(ns, { readOnly: true });
    await ro.close();
  });

  it('many partial writes to one block: whole-block pieces keep views short and right', async () => {
    const { v, j } = await journaled();
    const model = new Uint8Array(BS).fill(1);
    const points: [number, Uint8Array][] = [];
    for (let i = 0; i < 40; i++) {
      const d = fill(16, i + 10);
      await v.write(i * 16, d);
      model.set(d, i * 16);
      await v.flush();
      points.push([j.status().lastFlush, model.slice()]);
    }
    for (const [seq, m] of points) expect(await j.view(`seq:${seq}`).read(0, BS)).toEqual(m);
  });

  it('disable drops the requirement and the log', async () => {
    const { ns, v, j } = await journaled();
    await disableJournal(v, j, ns);
    await v.close();
    const again = await Volume.open(ns);
    expect((await ns.list()).some((n) => n.startsWith('journal.'))).toBe(false);
    await again.close();
  });
});

describe('the base snapshot of a write log', () => {
  it('cannot be deleted while the log is on, by any path; after disable it can', async () => {
    const ns = new MemoryNamespace();
    const v = await Volume.create(ns, { size: 16 * BS, blockSize: BS });
    const j = await enableJournal(v, ns, '');
    await v.write(0, fill(BS, 7));
    await j.mark('m');
    await expect(v.deleteSnapshot('journal.base')).rejects.toMatchObject({ code: 'locked', message: expect.stringContaining('journal disable') });
    expect(v.snapshots().some((s) => s.name === 'journal.base')).toBe(true);
    expect(await j.view('base').read(0, 4)).toEqual(fill(4, 0));
    await disableJournal(v, j, ns);
    await v.deleteSnapshot('journal.base');
    await v.close();
  });
});

describe('a write log that fails', () => {
  it('stops the volume: later writes and flushes fail, no layer flush records what the log missed, and a reopen reads the last flush', async () => {
    const { FaultController, FaultNamespace } = await import('../../../src/store/fault.js');
    const inner = new MemoryNamespace();
    const ctl = new FaultController();
    const ns = new FaultNamespace(inner, ctl);
    const v = await Volume.create(ns, { size: 16 * BS, blockSize: BS });
    const j = await enableJournal(v, ns, '');
    await v.write(0, fill(BS, 1));
    await j.mark('one');
    // the next store writes fail (the layer's and the log's): the write fails, and so does the log
    const failing = new Set<number>();
    for (let k = 0; k < 8; k++) failing.add(ctl.writes + k);
    ctl.plan = { ...ctl.plan, failAt: failing };
    await expect(v.write(BS, fill(BS, 2))).rejects.toMatchObject({ code: 'io' });
    expect(j.status().failed).toContain('write log failed');
    ctl.plan = { ...ctl.plan, failAt: new Set() };
    await expect(v.write(2 * BS, fill(BS, 3))).rejects.toMatchObject({ message: expect.stringContaining('write log failed') });
    await expect(v.flush()).rejects.toMatchObject({ message: expect.stringContaining('write log failed') });
    await v.close();
    const { volume, journal } = await openJournaled(inner);
    expect(await volume.read(0, 3 * BS)).toEqual(new Uint8Array([...fill(BS, 1), ...fill(2 * BS, 0)]));
    expect(await journal!.view('latest').read(0, 3 * BS)).toEqual(await volume.read(0, 3 * BS));
    await volume.close();
  });
});
