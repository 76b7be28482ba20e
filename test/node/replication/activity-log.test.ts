import { describe, expect, it } from 'vitest';
import { ActivityLog } from '../../../src/replication/activity-log.js';
import { FaultController, FaultNamespace } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';

const BS = 4096;
/** 1 MiB extents = 256 blocks; 20 MiB + 100 bytes: 21 extents, the last one short */
const EXT = 2 ** 20;
const BPE = EXT / BS;
const GEOMETRY = { size: 20 * EXT + 100, blockSize: BS };
const BLOCKS = Math.ceil(GEOMETRY.size / BS);

async function flushesOf(fn: (ns: FaultNamespace) => Promise<void>): Promise<{ writes: number; flushes: number }> {
  const ctl = new FaultController();
  const ns = new FaultNamespace(new MemoryNamespace(), ctl);
  await fn(ns);
  return { writes: ctl.writes, flushes: ctl.flushes };
}

describe('ActivityLog', () => {
  it('a new log recovers nothing; an unclean end recovers the extents in use, as block runs', async () => {
    const ns = new MemoryNamespace();
    const al = await ActivityLog.open(ns, 'replication.s1.al', GEOMETRY, { extentBytes: EXT });
    expect(al.recovered).toEqual([]);
    const t1 = await al.enter([0, 1]);
    const t2 = await al.enter([BPE - 1, 2, 5 * BPE, 1]); // extents 0, 1 and 5
    const t3 = await al.enter([BLOCKS - 1, 1]); // extent 20, short
    expect([t1, t2, t3]).toEqual([1, 2, 3]);
    expect(al.hotExtents).toBe(4);
    // abrupt end: reopen without close
    const again = await ActivityLog.open(ns, 'replication.s1.al', GEOMETRY, { extentBytes: EXT });
    expect(again.recovered).toEqual([0, 2 * BPE, 5 * BPE, BPE, 20 * BPE, BLOCKS - 20 * BPE]);
    await again.close();
    await al.close();
  });

  it('a clean close after every write was released recovers nothing; unreleased extents survive a close', async () => {
    const ns = new MemoryNamespace();
    let al = await ActivityLog.open(ns, 'al', GEOMETRY, { extentBytes: EXT });
    const t = await al.enter([3 * BPE, 10]);
    await al.enter([7 * BPE, 1]);
    al.releaseUpTo(t);
    await al.close();
    al = await ActivityLog.open(ns, 'al', GEOMETRY, { extentBytes: EXT });
    expect(al.recovered).toEqual([7 * BPE, BPE]);
    al.releaseUpTo(await al.enter([9 * BPE, 1]));
    await al.close();
    al = await ActivityLog.open(ns, 'al', GEOMETRY, { extentBytes: EXT });
    expect(al.recovered).toEqual([]);
    await al.close();
  });

  it('a hot extent costs no store I/O; concurrent enters of new extents share one write and flush (group commit)', async () => {
    let hot = { writes: 0, flushes: 0 };
    const all = await flushesOf(async (ns) => {
      const al = await ActivityLog.open(ns, 'al', GEOMETRY, { extentBytes: EXT });
      await al.enter([0, 1]);
      const before = { writes: (ns.controller as FaultController).writes, flushes: ns.controller.flushes };
      for (let i = 0; i < 100; i++) await al.enter([i % BPE, 1]);
      hot = { writes: ns.controller.writes - before.writes, flushes: ns.controller.flushes - before.flushes };
      // the first enter starts a commit; the next nine join the one after it
      const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => al.enter([(i + 1) * BPE, 1])));
      expect(new Set(tokens).size).toBe(10);
    });
    expect(hot).toEqual({ writes: 0, flushes: 0 });
    // one record at creation, one for extent 0, one for extent 1, one for the nine others
    expect(all.writes).toBeLessThanOrEqual(4);
    expect(all.flushes).toBeLessThanOrEqual(4);
  });

  it('when every slot is in use, enter waits for a release (back-pressure) and then evicts the least recently used released extent', async () => {
    const ns = new MemoryNamespace();
    const al = await ActivityLog.open(ns, 'al', GEOMETRY, { extentBytes: EXT, maxExtents: 3 });
    const t0 = await al.enter([0, 1]);
    const t1 = await al.enter([BPE, 1]);
    const t2 = await al.enter([2 * BPE, 1]);
    let done: number | null = null;
    const waiting = al.enter([3 * BPE, 1]).then((t) => (done = t));
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(done).toBeNull();
    expect(al.hotExtents).toBe(3);
    al.releaseUpTo(t0);
    await waiting;
    expect(done).toBe(t2 + 1);
    expect(al.hotExtents).toBe(3);
    // extent 0 left the log; 1, 2 and 3 are recorded
    const again = await ActivityLog.open(ns, 'al', GEOMETRY, { extentBytes: EXT, maxExtents: 3 });
    expect(again.recovered).toEqual([BPE, 3 * BPE]);
    expect(t1).toBeLessThan(t2);
    await expect(al.enter([0, 4 * BPE])).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringContaining('split it') });
    await al.close();
    await again.close();
  });

  it('refuses runs outside the volume, a geometry it was not written for (corrupt) and bad options', async () => {
    const ns = new MemoryNamespace();
    const al = await ActivityLog.open(ns, 'al', GEOMETRY, { extentBytes: EXT });
    await expect(al.enter([BLOCKS, 1])).rejects.toMatchObject({ code: 'out-of-range' });
    await expect(al.enter([1])).rejects.toMatchObject({ code: 'invalid-argument' });
    await al.enter([0, 1]);
    await expect(ActivityLog.open(ns, 'al', { size: GEOMETRY.size + 1, blockSize: BS })).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining('full resync') });
    await expect(ActivityLog.open(ns, 'b', GEOMETRY, { extentBytes: 1000 })).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(ActivityLog.open(ns, 'b', GEOMETRY, { maxExtents: 0 })).rejects.toMatchObject({ code: 'invalid-argument' });
    await al.close();
    await expect(al.enter([0, 1])).rejects.toMatchObject({ code: 'closed' });
  });

  it('a failed commit fails the enters waiting on it and every later one (io), never resolves them', async () => {
    const ctl = new FaultController({ failFlushAt: new Set([1]) }) // 0 is the new log's first record;
    const ns = new FaultNamespace(new MemoryNamespace(), ctl);
    const al = await ActivityLog.open(ns, 'al', GEOMETRY, { extentBytes: EXT });
    await expect(al.enter([0, 1])).rejects.toMatchObject({ code: 'io' });
    await expect(al.enter([0, 1])).rejects.toMatchObject({ code: 'io', message: expect.stringContaining('reopen it') });
  });

  it('delete removes its files', async () => {
    const ns = new MemoryNamespace();
    const al = await ActivityLog.open(ns, 'al', GEOMETRY);
    await al.enter([0, 1]);
    await al.delete();
    expect(await ns.list()).toEqual([]);
  });
});
