import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { scanBlocks } from '../../../src/wasm/index.js';
import { Rng, equalBytes, firstDiff } from '../helpers/random.js';

const KiB = 1024;
const MiB = 1024 * KiB;

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(isStrataError(e), String(e)).toBe(true);
    expect((e as { code: string }).code).toBe(code);
    return;
  }
  throw new Error(`expected error ${code}`);
}

describe('volume read/write', () => {
  for (const blockSize of [4 * KiB, 64 * KiB, 1 * MiB]) {
    it(`random writes match a flat model (block ${blockSize / KiB}K), across reopen`, async () => {
      const ns = new MemoryNamespace();
      const size = blockSize * 24 + 1000;
      const vol = await Volume.create(ns, { size, blockSize });
      const model = new Uint8Array(size);
      const rng = new Rng(blockSize);
      for (let op = 0; op < 300; op++) {
        const len = rng.pick([1, 17, 511, blockSize - 1, blockSize, blockSize + 1, 3 * blockSize + 5, rng.int(4 * blockSize) + 1]);
        const off = rng.int(size - Math.min(len, size - 1));
        const n = Math.min(len, size - off);
        const r = rng.next();
        if (r < 0.15) {
          await vol.writeZeroes(off, n);
          model.fill(0, off, off + n);
        } else {
          const data = r < 0.25 ? new Uint8Array(n) : rng.bytes(n);
          await vol.write(off, data);
          model.set(data, off);
        }
        if (op % 37 === 0) {
          const ro = rng.int(size - 1);
          const rl = Math.min(size - ro, rng.int(3 * blockSize) + 1);
          expect(equalBytes(await vol.read(ro, rl), model.subarray(ro, ro + rl))).toBe(true);
        }
        if (op % 50 === 0) await vol.flush();
      }
      expect(firstDiff(await vol.read(0, size), model)).toBe(-1);
      await vol.close();
      const again = await Volume.open(ns);
      expect(firstDiff(await again.read(0, size), model)).toBe(-1);
      expect((await again.check()).ok).toBe(true);
      await again.close();
    });
  }

  it('stores no data for zero blocks and known-zero entries only where a lower layer shows through', async () => {
    const ns = new MemoryNamespace();
    const vol = await Volume.create(ns, { size: 16 * 4096, blockSize: 4096 });
    await vol.write(0, new Uint8Array(16 * 4096));
    expect(vol.info().active.dataBlocks).toBe(0);
    expect(vol.info().active.zeroBlocks).toBe(0);
    await vol.write(0, new Uint8Array(4096).fill(7));
    await vol.snapshot('s1');
    await vol.write(0, new Uint8Array(2 * 4096));
    const info = vol.info();
    expect(info.active.dataBlocks).toBe(0);
    expect(info.active.zeroBlocks).toBe(1);
    expect(equalBytes(await vol.read(0, 4096), new Uint8Array(4096))).toBe(true);
    const snap = vol.openSnapshot('s1');
    expect((await snap.read(0, 1))[0]).toBe(7);
    await vol.close();
  });

  it('writeRanges equals writing each range in turn (aligned, unaligned, zero, overwrite, with a caller scan), across reopen', async () => {
    const blockSize = 4 * KiB;
    const ns = new MemoryNamespace();
    const size = blockSize * 64 + 300;
    const vol = await Volume.create(ns, { size, blockSize });
    await vol.write(0, new Rng(1).bytes(size));
    await vol.snapshot('below');
    const model = await vol.read(0, size);
    const rng = new Rng(7);
    for (let round = 0; round < 40; round++) {
      const ranges: { offset: number; length: number }[] = [];
      for (let at = rng.int(3 * blockSize); at < size && ranges.length < 12; ) {
        const aligned = round % 2 === 1 || rng.next() < 0.7;
        const offset = aligned ? Math.ceil(at / blockSize) * blockSize : at;
        const length = Math.min(size - offset, aligned ? blockSize * (1 + rng.int(4)) : 1 + rng.int(2 * blockSize));
        if (length <= 0) break;
        ranges.push({ offset, length });
        at = offset + length + (rng.next() < 0.3 ? 0 : rng.int(3) * blockSize);
      }
      const total = ranges.reduce((a, r) => a + r.length, 0);
      const data = rng.bytes(total);
      // Some whole blocks of zeros: they become known-zero entries (a snapshot shows through).
      if (total >= blockSize && rng.next() < 0.5) data.fill(0, 0, blockSize);
      // Odd rounds are whole blocks only, hashed by the caller (as the qcow2 import does).
      await vol.writeRanges(ranges, data, round % 2 === 1 ? scanBlocks(data, blockSize) : undefined);
      let pos = 0;
      for (const r of ranges) {
        model.set(data.subarray(pos, pos + r.length), r.offset);
        pos += r.length;
      }
      if (round % 9 === 0) await vol.flush();
      if (round % 5 === 0) expect(firstDiff(await vol.read(0, size), model)).toBe(-1);
    }
    expect(firstDiff(await vol.read(0, size), model)).toBe(-1);
    await expectCode(vol.writeRanges([{ offset: blockSize, length: 10 }, { offset: 0, length: 10 }], new Uint8Array(20)), 'invalid-argument');
    await expectCode(vol.writeRanges([{ offset: 0, length: 10 }], new Uint8Array(11)), 'invalid-argument');
    await expectCode(vol.writeRanges([{ offset: size - 5, length: 10 }], new Uint8Array(10)), 'out-of-range');
    await expectCode(vol.writeRanges([{ offset: 0, length: 2 * blockSize }], new Uint8Array(2 * blockSize), scanBlocks(new Uint8Array(blockSize), blockSize)), 'invalid-argument');
    await vol.close();
    const again = await Volume.open(ns);
    expect(firstDiff(await again.read(0, size), model)).toBe(-1);
    expect((await again.check()).ok).toBe(true);
    await again.close();
  });

  it('readIntoNow reads what readInto reads (chains, zeros, snapshots) and declines while a write is under way', async () => {
    const blockSize = 4 * KiB;
    const ns = new MemoryNamespace();
    const size = blockSize * 40 + 123;
    const vol = await Volume.create(ns, { size, blockSize });
    const rng = new Rng(5);
    await vol.write(0, rng.bytes(size));
    await vol.snapshot('a');
    await vol.writeZeroes(3 * blockSize + 7, 5 * blockSize);
    await vol.write(10 * blockSize - 3, rng.bytes(7 * blockSize));
    await vol.snapshot('b');
    await vol.write(20 * blockSize, rng.bytes(blockSize));
    for (const view of [vol, vol.openSnapshot('a'), vol.openSnapshot('b')]) {
      for (let k = 0; k < 60; k++) {
        const offset = rng.int(size);
        const length = Math.min(size - offset, rng.pick([1, 100, blockSize, 3 * blockSize + 5, rng.int(20 * blockSize)]));
        const now = new Uint8Array(length).fill(0xaa);
        expect(view.readIntoNow!(offset, now)).toBe(true);
        expect(firstDiff(now, await view.read(offset, length))).toBe(-1);
      }
    }
    // Longer than the synchronous path takes: declined, for readInto to do.
    expect(vol.readIntoNow(0, new Uint8Array(size))).toBe(blockSize * 256 >= size);
    await expectCode(() => vol.readIntoNow(size - 1, new Uint8Array(2)), 'out-of-range');
    // While a write holds its blocks, a read of them must wait for it rather than see half of
    // it; a read of other blocks need not wait.
    const writing = vol.write(blockSize + 1, rng.bytes(2 * blockSize));
    expect(vol.readIntoNow(2 * blockSize, new Uint8Array(blockSize))).toBe(false);
    expect(vol.readIntoNow(blockSize - 1, new Uint8Array(2))).toBe(false);
    expect(vol.readIntoNow(0, new Uint8Array(blockSize))).toBe(true);
    expect(vol.readIntoNow(4 * blockSize, new Uint8Array(blockSize))).toBe(true);
    await writing;
    expect(vol.readIntoNow(blockSize, new Uint8Array(blockSize))).toBe(true);
    await vol.close();
    await expectCode(() => vol.readIntoNow(0, new Uint8Array(1)), 'closed');
  });

  it('startWriteback runs beside writes, flush and close without changing what they do', async () => {
    const ns = new MemoryNamespace();
    const blockSize = 4 * KiB;
    const vol = await Volume.create(ns, { size: 64 * blockSize, blockSize });
    const rng = new Rng(3);
    const model = new Uint8Array(64 * blockSize);
    for (let i = 0; i < 20; i++) {
      const off = rng.int(60) * blockSize;
      const data = rng.bytes(rng.int(4 * blockSize) + 1);
      const w = vol.write(off, data);
      vol.startWriteback();
      await w;
      model.set(data, off);
      vol.startWriteback();
      if (i % 7 === 0) await vol.flush();
    }
    vol.startWriteback();
    await vol.close();
    vol.startWriteback(); // closed: nothing to do, no error
    const again = await Volume.open(ns);
    expect(firstDiff(await again.read(0, model.length), model)).toBe(-1);
    await again.close();
  });

  it('rejects bad ranges, bad sizes and writes to read-only volumes with codes', async () => {
    const ns = new MemoryNamespace();
    await expectCode(Volume.create(ns, { size: 1 * MiB, blockSize: 3000 }), 'invalid-argument');
    await expectCode(Volume.create(ns, { size: -1 }), 'invalid-argument');
    const vol = await Volume.create(ns, { size: 1 * MiB, blockSize: 4096 });
    await expectCode(vol.read(MiB - 10, 11), 'out-of-range');
    await expectCode(vol.write(-1, new Uint8Array(1)), 'invalid-argument');
    await expectCode(vol.write(0.5, new Uint8Array(1)), 'invalid-argument');
    await expectCode(vol.snapshot('bad name'), 'invalid-argument');
    await expectCode(Volume.create(ns, { size: MiB }), 'exists');
    await vol.close();
    await expectCode(vol.read(0, 1), 'closed');
    const ro = await Volume.open(ns, { readOnly: true });
    await expectCode(ro.write(0, new Uint8Array(1)), 'read-only');
    await expectCode(ro.snapshot('x'), 'read-only');
    await ro.close();
    await expectCode(Volume.open(new MemoryNamespace()), 'not-found');
  });

  it('a 1 TiB volume opens and works with metadata proportional to what is written', async () => {
    const ns = new MemoryNamespace();
    const TiB = 2 ** 40;
    const vol = await Volume.create(ns, { size: TiB, blockSize: 4096 });
    const offsets = [0, 2 ** 39 + 12345, TiB - 4096, 777 * 2 ** 30];
    for (const o of offsets) await vol.write(o, new Uint8Array(4096).fill((o % 251) + 1));
    await vol.snapshot('far');
    await vol.write(TiB - 1, new Uint8Array([9]));
    for (const o of offsets.slice(0, 3)) expect((await vol.read(o, 1))[0]).toBe((o % 251) + 1);
    expect((await vol.read(TiB - 1, 1))[0]).toBe(9);
    expect((await vol.read(2 ** 35, 8))).toEqual(new Uint8Array(8));
    const info = vol.info();
    expect(info.allocatedBytes).toBeLessThan(64 * 4096);
    expect(info.metadataMemoryBytes).toBeLessThan(4 * MiB);
    let stored = 0;
    for (const name of await ns.list()) stored += ns.files.get(name)!.length;
    expect(stored).toBeLessThan(1 * MiB);
    const map = await vol.map();
    expect(map.reduce((a, e) => a + e.length, 0)).toBe(TiB);
    expect(map.filter((e) => e.data).length).toBeGreaterThanOrEqual(4);
    await vol.close();
    const again = await Volume.open(ns);
    expect((await again.read(TiB - 1, 1))[0]).toBe(9);
    await again.close();
  });
});

describe('snapshots', () => {
  it('create, read, revert and delete keep every other snapshot unchanged (randomised tree)', async () => {
    const ns = new MemoryNamespace();
    const bs = 4096;
    const size = 40 * bs;
    let vol = await Volume.create(ns, { size, blockSize: bs });
    const rng = new Rng(7);
    let live = new Uint8Array(size);
    const snaps = new Map<string, Uint8Array>();
    let counter = 0;
    const verifyAll = async () => {
      expect(firstDiff(await vol.read(0, size), live)).toBe(-1);
      expect(vol.snapshots().map((s) => s.name).sort()).toEqual([...snaps.keys()].sort());
      for (const [name, content] of snaps) expect(firstDiff(await vol.openSnapshot(name).read(0, size), content), name).toBe(-1);
    };
    for (let op = 0; op < 400; op++) {
      const r = rng.next();
      if (r < 0.6) {
        const n = rng.range(1, 5 * bs);
        const off = rng.int(size - n);
        const d = rng.next() < 0.2 ? new Uint8Array(n) : rng.bytes(n);
        await vol.write(off, d);
        live.set(d, off);
      } else if (r < 0.75) {
        const name = `s${counter++}`;
        await vol.snapshot(name);
        snaps.set(name, live.slice());
      } else if (r < 0.85 && snaps.size > 0) {
        const name = rng.pick([...snaps.keys()]);
        await vol.revert(name);
        live = snaps.get(name)!.slice();
      } else if (snaps.size > 0) {
        const name = rng.pick([...snaps.keys()]);
        await vol.deleteSnapshot(name);
        snaps.delete(name);
      }
      if (op % 25 === 0) await verifyAll();
      if (op % 100 === 99) {
        await vol.close();
        vol = await Volume.open(ns);
        await verifyAll();
      }
    }
    await verifyAll();
    // Deleting every snapshot collapses the tree to one layer with the live content.
    for (const name of [...snaps.keys()]) {
      await vol.deleteSnapshot(name);
      snaps.delete(name);
    }
    await verifyAll();
    expect(vol.info().layers.length).toBe(1);
    expect((await vol.check()).ok).toBe(true);
    await vol.close();
  });

  it('snapshot creation is O(1): it writes a constant amount regardless of volume content', async () => {
    const ns = new MemoryNamespace();
    const vol = await Volume.create(ns, { size: 64 * MiB, blockSize: 4096 });
    await vol.write(0, new Rng(1).bytes(32 * MiB));
    await vol.flush();
    const before = new Map([...ns.files].map(([k, v]) => [k, v.length]));
    await vol.snapshot('a');
    let written = 0;
    for (const [k, v] of ns.files) written += Math.max(0, v.length - (before.get(k) ?? 0));
    expect(written).toBeLessThan(16 * KiB);
    await vol.close();
  });

  it('equal layer content has equal content IDs on different stores', async () => {
    const ids: (string | null)[] = [];
    for (const order of [0, 1]) {
      const vol = await Volume.create(new MemoryNamespace(), { size: MiB, blockSize: 4096 });
      const writes: [number, number][] = [[0, 1], [8192, 2], [40960, 3]];
      if (order) writes.reverse();
      for (const [o, v] of writes) await vol.write(o, new Uint8Array(4096).fill(v));
      ids.push((await vol.snapshot('x')).contentId);
      await vol.close();
    }
    expect(ids[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(ids[0]).toBe(ids[1]);
  });

  it('reading a deleted snapshot fails with not-found; names are unique', async () => {
    const vol = await Volume.create(new MemoryNamespace(), { size: MiB, blockSize: 4096 });
    await vol.snapshot('a');
    await expectCode(vol.snapshot('a'), 'exists');
    const view = vol.openSnapshot('a');
    await vol.deleteSnapshot('a');
    await expectCode(view.read(0, 1), 'not-found');
    await expectCode(vol.revert('a'), 'not-found');
    await vol.close();
  });
});

describe('map log compaction', () => {
  it('rewrites an overwritten map log at flush, keeps every block, and survives reopen', async () => {
    const ns = new MemoryNamespace();
    const bs = 4096;
    const vol = await Volume.create(ns, { size: 8 * bs, blockSize: bs, compactMapBytes: 4096 });
    const rng = new Rng(3);
    const model = new Uint8Array(8 * bs);
    let sawCompacted = false;
    for (let round = 0; round < 200; round++) {
      const off = rng.int(8) * bs;
      const d = rng.bytes(bs);
      await vol.write(off, d);
      model.set(d, off);
      await vol.flush();
      if ([...ns.files.keys()].some((n) => /^L\d+\.\d+\.map$/.test(n))) sawCompacted = true;
      // never more than one map generation on the store
      expect([...ns.files.keys()].filter((n) => n.endsWith('.map')).length).toBe(1);
    }
    expect(sawCompacted).toBe(true);
    const mapBytes = [...ns.files].filter(([n]) => n.endsWith('.map')).reduce((a, [, b]) => a + b.length, 0);
    expect(mapBytes).toBeLessThan(16 * 1024);
    await vol.close();
    const again = await Volume.open(ns);
    expect(firstDiff(await again.read(0, 8 * bs), model)).toBe(-1);
    expect((await again.check()).ok).toBe(true);
    await again.close();
  });
});

describe('one writer per volume', () => {
  it('a second writable open gets `locked`; read-only opens and a reopen after close work', async () => {
    const ns = new MemoryNamespace();
    const vol = await Volume.create(ns, { size: MiB, blockSize: 4096 });
    await expectCode(Volume.open(new MemoryNamespace({ files: ns.files })), 'locked');
    const ro = await Volume.open(ns, { readOnly: true });
    await ro.close();
    await vol.close();
    const again = await Volume.open(ns);
    await again.close();
  });
});

describe('views for exporters and servers', () => {
  it('map(offset, length) describes exactly that range; layerChain and openLayer expose single layers', async () => {
    const ns = new MemoryNamespace();
    const bs = 4096;
    const vol = await Volume.create(ns, { size: 64 * bs, blockSize: bs });
    await vol.write(0, new Uint8Array(8 * bs).fill(1));
    await vol.snapshot('base');
    await vol.write(2 * bs, new Uint8Array(bs).fill(2));
    await vol.writeZeroes(4 * bs, bs);
    const whole = await vol.map();
    const part = await vol.map(bs + 100, 5 * bs);
    expect(part[0]!.start).toBe(bs + 100);
    expect(part.reduce((a, e) => a + e.length, 0)).toBe(5 * bs);
    for (const e of part) {
      const w = whole.find((x) => x.start <= e.start && e.start + e.length <= x.start + x.length)!;
      expect([w.depth, w.zero, w.data]).toEqual([e.depth, e.zero, e.data]);
    }
    const chain = vol.layerChain();
    expect(chain.length).toBe(2);
    expect(vol.layerChain('base')).toEqual([chain[1]]);
    const top = vol.openLayer(chain[0]!);
    const topMap = await top.map();
    expect(topMap.filter((e) => e.present).map((e) => [e.start / bs, e.length / bs, e.zero])).toEqual([[2, 1, false], [4, 1, true]]);
    expect((await top.read(0, 1))[0]).toBe(0);
    expect((await top.read(2 * bs, 1))[0]).toBe(2);
    const base = vol.openLayer(chain[1]!);
    expect((await base.read(2 * bs, 1))[0]).toBe(1);
    await expectCode(vol.map(63 * bs, 2 * bs), 'out-of-range');
    await vol.close();
  });
});
