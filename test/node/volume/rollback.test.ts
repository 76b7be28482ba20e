import { describe, expect, it } from 'vitest';
import { isStrataError, type StrataError } from '../../../src/errors.js';
import { MemoryBacking, MemoryNamespace } from '../../../src/store/memory.js';
import type { StoreNamespace } from '../../../src/store/store.js';
import { Layer } from '../../../src/volume/layer.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng, equalBytes } from '../helpers/random.js';

const BS = 4096;
const SIZE = 32 * BS;

/** A volume with three snapshots, writes between them, and `after` writes after the last one. */
async function build(after: number, compactMapBytes?: number) {
  const ns = new MemoryNamespace();
  const vol = await Volume.create(ns, { size: SIZE, blockSize: BS, ...(compactMapBytes ? { compactMapBytes } : {}) });
  const rng = new Rng(7);
  const write = async (n: number) => {
    for (let i = 0; i < n; i++) await vol.write(rng.int(SIZE - 3 * BS), rng.bytes(rng.range(1, 3 * BS)));
    await vol.flush();
  };
  for (const name of ['a', 'b', 'c']) {
    await write(6);
    await vol.snapshot(name);
  }
  await write(after);
  const live = await vol.read(0, SIZE);
  const generation = vol.info().generation;
  await vol.close();
  return { ns, live, generation, newest: `manifest.${generation % 2}`, older: `manifest.${(generation + 1) % 2}` };
}

function files(ns: MemoryNamespace): Map<string, Uint8Array> {
  return new Map([...ns.files].map(([n, b]) => [n, b.contents()]));
}

function sameFiles(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>): boolean {
  if (a.size !== b.size) return false;
  for (const [n, x] of a) if (!b.has(n) || !equalBytes(x, b.get(n)!)) return false;
  return true;
}

async function refused(ns: MemoryNamespace): Promise<StrataError> {
  try {
    const v = await Volume.open(ns);
    await v.close();
  } catch (e) {
    expect(isStrataError(e), String(e)).toBe(true);
    return e as StrataError;
  }
  throw new Error('the writable open succeeded');
}

describe('a lost newest manifest slot is never a silent rollback', () => {
  it('deleting the newest slot after writes: writable open refuses and changes nothing; read-only open and check report it', async () => {
    const { ns, newest, generation } = await build(5);
    ns.files.delete(newest);
    const before = files(ns);
    const e = await refused(ns);
    expect(e.code).toBe('corrupt');
    expect(e.message).toContain(`${newest} is missing`);
    expect(e.message).toMatch(/layer L000004 is not named by the surviving manifest \(generation \d+\), but it holds \d+ bytes of data/);
    expect(e.message).toContain('stratadisk salvage');
    // The newer layer (the writes after snapshot c) is still there, byte for byte.
    expect(sameFiles(before, files(ns))).toBe(true);
    expect(ns.files.has('L000004.data')).toBe(true);

    const ro = await Volume.open(ns, { readOnly: true });
    try {
      expect(ro.info().generation).toBe(generation - 1);
      expect(ro.snapshots().map((s) => s.name)).toEqual(['a', 'b']);
      expect(ro.newerState.map((x) => x.file)).toEqual([newest, 'L000004.data']);
      const report = await ro.check();
      expect(report.ok).toBe(false);
      expect(report.problems.slice(0, 2).map((p) => [p.layer, p.code])).toEqual([
        [newest, 'corrupt'],
        ['L000004', 'corrupt'],
      ]);
    } finally {
      await ro.close();
    }
    expect(sameFiles(before, files(ns))).toBe(true);
  });

  it('deleting the newest slot right after a snapshot (no writes since): refused on the missing slot alone', async () => {
    const { ns, newest } = await build(0);
    ns.files.delete(newest);
    const e = await refused(ns);
    expect(e.code).toBe('corrupt');
    expect(e.message).toContain(`${newest} is missing`);
    expect(ns.files.has('L000004.data')).toBe(true);
  });

  it('deleting the older slot is refused as well: a missing slot is never left by a crash', async () => {
    const { ns, older, generation } = await build(2);
    ns.files.delete(older);
    const e = await refused(ns);
    expect(e.message).toContain(`${older} is missing`);
    expect(e.message).toContain(`the generation after ${generation} (the newest one) may have been lost`);
  });

  it('an emptied or replaced newest slot is refused', async () => {
    for (const damage of ['empty', 'old copy'] as const) {
      const { ns, newest, older, generation } = await build(3);
      ns.files.set(newest, damage === 'empty' ? new MemoryBacking() : new MemoryBacking(ns.files.get(older)!.contents()));
      const e = await refused(ns);
      expect(e.code).toBe('corrupt');
      // the survivor is now the older generation; the damaged slot shows the loss
      if (damage === 'empty') expect(e.message).toContain(`${newest} is empty although the volume is at generation ${generation - 1}`);
      else expect(e.message).toMatch(new RegExp(`holds generation ${generation - 1}, where generation \\d+ belongs`));
    }
  });

  it('a torn newest slot (what a crash leaves) is accepted unless newer layer files hold data', async () => {
    const { ns, newest } = await build(3);
    const b = ns.files.get(newest)!;
    b.buf.fill(0xaa, 30, 60); // damages the record: it reads like a commit torn by a crash
    const e = await refused(ns);
    expect(e.message).not.toContain(newest);
    expect(e.message).toMatch(/layer L000004 is not named by the surviving manifest/);
  });

  it('a lost slot after a map compaction: the map it names is gone, and the error says the slot is missing', async () => {
    const { ns } = await build(0);
    const v = await Volume.open(ns, { compactMapBytes: 1024 });
    for (let i = 0; i < 400; i++) {
      await v.write(0, new Uint8Array(100).fill(i & 0xff));
      await v.flush();
    }
    const generation = v.info().generation;
    await v.close();
    expect([...ns.files.keys()].some((n) => /^L000004\.[0-9]+\.map$/.test(n))).toBe(true);
    ns.files.delete(`manifest.${generation % 2}`);
    const e = await refused(ns);
    expect(e.code).toBe('corrupt');
    expect(e.message).toContain(`manifest.${generation % 2} is missing`);
    expect(e.message).toContain('stratadisk salvage');
  });

  it('a newer compacted map holding entries the current map lacks is kept and refused', async () => {
    const { ns } = await build(2);
    const layer = await Layer.open(ns, 'L000004', BS, false, 0);
    const slots: number[] = [];
    layer.allocate(1, slots);
    await layer.data.write(slots[0]! * BS, new Uint8Array(BS).fill(3));
    layer.setEntries([5], slots, 1, new Uint8Array(16).fill(1));
    await layer.writeCompacted(ns).then((log) => log.store.close());
    await layer.close(); // the entry never reaches L000004.map: only the compacted map has it
    const e = await refused(ns);
    expect(e.message).toMatch(/L000004\.1\.map is a newer map of layer L000004/);
    expect(ns.files.has('L000004.1.map')).toBe(true);
  });
});

describe('what a crash legitimately leaves is still cleaned up', () => {
  it('an empty layer created for a commit that never completed, a dropped layer and an uncommitted compaction are deleted; the volume opens', async () => {
    const { ns, live } = await build(2);
    // The layer the next snapshot would create (L000005), created but never committed.
    await (await Layer.create(ns, 'L000005', BS)).close();
    // A layer dropped by a committed merge whose file deletion was cut short (numbered below the next one).
    ns.files.set('L000000.data', new MemoryBacking(new Uint8Array(BS)));
    // A compaction of the active layer written but not committed: the same entries as its map.
    const active = 'L000004';
    ns.files.set(`${active}.1.map`, new MemoryBacking(ns.files.get(`${active}.map`)!.contents()));
    const ro = await Volume.open(ns, { readOnly: true });
    expect(ro.newerState).toEqual([]);
    expect((await ro.check()).ok).toBe(true);
    await ro.close();
    const v = await Volume.open(ns);
    try {
      expect(equalBytes(await v.read(0, SIZE), live)).toBe(true);
    } finally {
      await v.close();
    }
    for (const gone of ['L000005.data', 'L000005.map', 'L000000.data', `${active}.1.map`]) expect(ns.files.has(gone), gone).toBe(false);
  });

  it('an uncommitted layer that already holds data is kept and refused, not deleted', async () => {
    const { ns } = await build(2);
    const l = await Layer.create(ns, 'L000005', BS);
    await l.close();
    ns.files.set('L000005.data', new MemoryBacking(new Uint8Array(BS).fill(9)));
    const e = await refused(ns);
    expect(e.message).toMatch(/layer L000005 is not named by the surviving manifest.*holds 4096 bytes of data/);
    expect(ns.files.has('L000005.data')).toBe(true);
  });

  it('a layer numbered past the next one is kept and refused even when empty', async () => {
    const { ns } = await build(2);
    await (await Layer.create(ns, 'L000007', BS)).close();
    const e = await refused(ns);
    expect(e.message).toMatch(/layer L000007 .* is newer than the L000005 that generation would create next/);
    expect(ns.files.has('L000007.map')).toBe(true);
  });
});

describe('a writer committing while a reader opens is no loss', () => {
  it('a snapshot and writes committed between the reader reading the manifest and listing the files are not reported', async () => {
    const { ns } = await build(1);
    const writer = await Volume.open(ns);
    let hook: (() => Promise<void>) | null = async () => {
      await writer.snapshot('during');
      await writer.write(0, new Uint8Array(BS).fill(5));
      await writer.flush();
    };
    // The reader's namespace runs the writer's commit right before the reader lists the files.
    const racing: StoreNamespace = {
      readOnly: false,
      open: (n, o) => ns.open(n, o),
      exists: (n) => ns.exists(n),
      delete: (n) => ns.delete(n),
      sync: () => ns.sync(),
      list: async () => {
        const h = hook;
        hook = null;
        if (h) await h();
        return ns.list();
      },
    };
    const reader = await Volume.open(racing, { readOnly: true });
    try {
      expect(hook).toBeNull();
      expect(reader.snapshots().map((s) => s.name)).not.toContain('during');
      expect(reader.newerState).toEqual([]);
    } finally {
      await reader.close();
      await writer.close();
    }
  });
});

describe('damage messages point at salvage, not at check', () => {
  it('a missing layer file: corrupt, advising salvage, and naming the lost slot when one is missing', async () => {
    const { ns, newest } = await build(1);
    ns.files.delete('L000002.map');
    const e = await refused(ns);
    expect(e.message).toContain('stratadisk salvage');
    expect(e.message).not.toContain('stratadisk check');
    ns.files.delete(newest);
    const e2 = await refused(ns);
    expect(e2.message).toContain(`${newest} is missing`);
  });
});

