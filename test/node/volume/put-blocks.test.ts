import { beforeAll, describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import type { StoreNamespace } from '../../../src/store/store.js';
import { Layer, SLOT_ABSENT, SLOT_ZERO, dataName } from '../../../src/volume/layer.js';
import { batchFromRuns, type BlockBatch } from '../../../src/volume/layer-writer.js';
import { copyPass, layerSource } from '../../../src/jobs/copy-pass.js';
import { Volume } from '../../../src/volume/volume.js';
import { HookedNamespace } from '../helpers/hooked-namespace.js';
import { loadKernels, scanBlocks } from '../../../src/wasm/index.js';
import { Rng } from '../helpers/random.js';

const BS = 4096;

/**
 * A memory namespace that counts the writes to each store and fails those to the stores named
 * in `failing` (with `io`, nothing applied), so a test can aim a failure at one layer's data.
 */
class TrapNamespace extends HookedNamespace {
  readonly writes = new Map<string, number>();
  readonly failing = new Set<string>();

  protected override beforeWrite(name: string): void {
    this.writes.set(name, (this.writes.get(name) ?? 0) + 1);
    if (this.failing.has(name)) throw new StrataError('io', `Injected write failure on ${name}.`);
  }
  count(name: string): number {
    return this.writes.get(name) ?? 0;
  }
}

function blocksOf(rng: Rng, n: number, zeroAt: readonly number[] = []): Uint8Array {
  const data = rng.bytes(n * BS);
  for (const i of zeroAt) data.fill(0, i * BS, (i + 1) * BS);
  return data;
}

/** The state a failed put must leave untouched. */
function stateOf(l: Layer, blocks: readonly number[]) {
  return { slots: blocks.map((b) => l.slot(b)), owned: l.owned.count(), contentId: l.contentId(), dirty: l.dirty, dataBlocks: l.dataBlocks, zeroBlocks: l.zeroBlocks };
}

beforeAll(async () => {
  await loadKernels();
});

describe('Layer.putBlocks', () => {
  it('puts a run with one store write, records entries, hashes, zero entries and ownership', async () => {
    const ns = new TrapNamespace();
    const l = await Layer.create(ns, 'L1', BS);
    const data = blocksOf(new Rng(1), 16, [5]);
    const scan = scanBlocks(data, BS);
    const before = ns.count(dataName('L1'));
    await l.putBlocks(batchFromRuns([100, 16], data, scan));
    // 15 data blocks in consecutive fresh slots, but block 5 is a zero entry between them: two runs
    expect(ns.count(dataName('L1')) - before).toBe(2);
    expect(l.dataBlocks).toBe(15);
    expect(l.zeroBlocks).toBe(1);
    expect(l.slot(105)).toBe(SLOT_ZERO);
    expect(l.owned.count()).toBe(16);
    expect(l.owned.count(100, 16)).toBe(16);
    for (let i = 0; i < 16; i++) {
      if (i === 5) continue;
      const s = l.slot(100 + i);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(await l.data.read(s * BS, BS)).toEqual(data.subarray(i * BS, (i + 1) * BS));
      expect(l.hash(100 + i)).toEqual(scan.hashes.subarray(i * 16, i * 16 + 16));
    }
    // the content ID is the one the entries give, however they got there
    const m = await Layer.create(new MemoryNamespace(), 'L1', BS);
    m.setEntries([105], [SLOT_ZERO], 1, null);
    const blocks: number[] = [];
    const slots: number[] = [];
    const idx: number[] = [];
    for (let i = 0; i < 16; i++) if (i !== 5) (blocks.push(100 + i), slots.push(l.slot(100 + i)), idx.push(i));
    m.setEntries(blocks, slots, blocks.length, scan.hashes, idx);
    expect(l.contentId()).toBe(m.contentId());
    await l.flush();
    await l.close();
    await m.close();
  });

  it('a failed data write gives back every slot and records nothing', async () => {
    const ns = new TrapNamespace();
    const l = await Layer.create(ns, 'L1', BS);
    const rng = new Rng(2);
    // some entries already there: a durable one, and one written since the flush
    await l.putBlocks(batchFromRuns([0, 4], blocksOf(rng, 4), scanBlocks(blocksOf(rng, 4), BS)));
    await l.flush();
    const d1 = blocksOf(rng, 1);
    await l.putBlocks(batchFromRuns([10, 1], d1, scanBlocks(d1, BS)), { inPlace: 'fresh' });
    const blocks = [0, 1, 10, 20, 21, 22, 30];
    const before = stateOf(l, blocks);
    const slotCount = l.slotCount;
    const data = blocksOf(rng, 7, [6]);
    ns.failing.add(dataName('L1'));
    const batch: BlockBatch = { blocks, index: [0, 1, 2, 3, 4, 5, 6], zero: [0, 0, 0, 0, 0, 0, 1], data, hashes: scanBlocks(data, BS).hashes };
    await expect(l.putBlocks(batch, { inPlace: 'fresh' })).rejects.toThrow(/Injected write failure/);
    ns.failing.clear();
    expect(stateOf(l, blocks)).toEqual(before);
    // no slot leaked: the next allocation gets the lowest free slots again, then new ones from where the failed put began
    // (blocks 0, 1, 20, 21, 22 needed new slots; 10 was overwritten in place)
    const got: number[] = [];
    l.allocate(5, got);
    expect(got).toEqual([0, 1, 2, 3, 4].map((i) => slotCount + i));
    l.unallocate(got);
    await l.close();
  });

  it("'fresh' overwrites a slot taken since the last flush in place, and takes a new one after a flush", async () => {
    const ns = new TrapNamespace();
    const l = await Layer.create(ns, 'L1', BS);
    const rng = new Rng(3);
    const put = async (block: number) => {
      const d = blocksOf(rng, 1);
      await l.putBlocks(batchFromRuns([block, 1], d, scanBlocks(d, BS)), { inPlace: 'fresh' });
      return d;
    };
    await put(7);
    const s0 = l.slot(7);
    await put(7);
    expect(l.slot(7)).toBe(s0);
    await l.flush();
    const d = await put(7);
    expect(l.slot(7)).not.toBe(s0);
    expect(await l.data.read(l.slot(7) * BS, BS)).toEqual(d);
    // 'none' never overwrites
    const d2 = blocksOf(rng, 1);
    const s1 = l.slot(7);
    await l.putBlocks(batchFromRuns([7, 1], d2, scanBlocks(d2, BS)));
    expect(l.slot(7)).not.toBe(s1);
    await l.close();
  });

  it('commit leaves out the blocks `keep` refuses and gives their slots back', async () => {
    const ns = new TrapNamespace();
    const l = await Layer.create(ns, 'L1', BS);
    const data = blocksOf(new Rng(4), 4);
    const p = l.stageBlocks(batchFromRuns([0, 4], data, scanBlocks(data, BS)));
    await p.written;
    expect(l.owned.count()).toBe(0);
    await p.commit((b) => b !== 1 && b !== 2);
    expect([0, 1, 2, 3].map((b) => l.slot(b))).toEqual([0, SLOT_ABSENT, SLOT_ABSENT, 3]);
    const got: number[] = [];
    l.allocate(2, got);
    expect(got).toEqual([1, 2]);
    await l.close();
  });

  it("'own' writes the block's own slot at commit, only if the block still has it; a failure there gives back every new slot", async () => {
    const ns = new TrapNamespace();
    const l = await Layer.create(ns, 'L1', BS);
    const rng = new Rng(5);
    const first = blocksOf(rng, 2);
    await l.putBlocks(batchFromRuns([0, 2], first, scanBlocks(first, BS)));
    await l.flush();
    // block 0 and 1 held (durable slots 0, 1); block 2 new
    const data = blocksOf(rng, 3);
    const scan = scanBlocks(data, BS);
    const p = l.stageBlocks(batchFromRuns([0, 3], data, scan), { inPlace: 'own', maxRun: 1 });
    await p.written;
    expect(p.fresh).toEqual([2]);
    expect(await l.data.read(0, BS)).toEqual(first.subarray(0, BS)); // not yet
    expect(await p.commit((b) => b !== 1)).toBe(1);
    expect(await l.data.read(0, BS)).toEqual(data.subarray(0, BS));
    expect(await l.data.read(BS, BS)).toEqual(first.subarray(BS, 2 * BS)); // refused: untouched
    expect(l.hash(0)).toEqual(scan.hashes.subarray(0, 16));
    expect(l.slot(2)).toBe(2);
    await l.flush();
    // a failed in-place write at commit: the new slot goes back, nothing is recorded
    const more = blocksOf(rng, 2);
    const q = l.stageBlocks({ blocks: [1, 5], index: [0, 1], data: more, hashes: scanBlocks(more, BS).hashes }, { inPlace: 'own' });
    await q.written;
    const before = stateOf(l, [1, 5]);
    ns.failing.add(dataName('L1'));
    await expect(q.commit()).rejects.toThrow(/Injected write failure/);
    ns.failing.clear();
    expect(stateOf(l, [1, 5])).toEqual(before);
    const got: number[] = [];
    l.allocate(1, got);
    expect(got).toEqual(q.fresh);
    await l.close();
  });
});

describe('snapshot deletion (merge) writes through Layer.putBlocks', () => {
  /** A volume whose base holds blocks 0..15 (snapshot s1) and whose live layer holds 32 other blocks. */
  async function twoLayers(ns: StoreNamespace) {
    const v = await Volume.create(ns, { size: 1 << 20, blockSize: BS });
    const rng = new Rng(6);
    const base = rng.bytes(16 * BS);
    await v.write(0, base);
    await v.snapshot('s1');
    const top = rng.bytes(32 * BS);
    await v.write(100 * BS, top);
    await v.flush();
    return { v, base, top, child: v.info().active.layer };
  }

  it('copies a run of blocks with one store write (was one per block)', async () => {
    const ns = new TrapNamespace();
    const { v, base, child } = await twoLayers(ns);
    const before = ns.count(dataName(child));
    await v.deleteSnapshot('s1'); // 16 blocks go up into the child, which holds more
    expect(ns.count(dataName(child)) - before).toBe(1);
    expect(await v.read(0, 16 * BS)).toEqual(base);
    await v.close();
  });

  it('a failed write gives back the slots it took and records nothing; the next open finishes the merge', async () => {
    const ns = new TrapNamespace();
    const { v, base, top, child } = await twoLayers(ns);
    const c = v.layer(child);
    const blocks = Array.from({ length: 16 }, (_, i) => i);
    const before = stateOf(c, blocks);
    const slotCount = c.slotCount;
    ns.failing.add(dataName(child));
    await expect(v.deleteSnapshot('s1')).rejects.toThrow(/Injected write failure/);
    ns.failing.clear();
    expect(stateOf(c, blocks)).toEqual(before);
    // no slot leaked: the slots the failed merge took are the next ones handed out
    const got: number[] = [];
    c.allocate(16, got);
    expect(got).toEqual(Array.from({ length: 16 }, (_, i) => slotCount + i));
    c.unallocate(got);
    await v.close();
    const w = await Volume.open(ns);
    expect(w.snapshots()).toEqual([]);
    expect(w.info().layers.length).toBe(1);
    expect(await w.read(0, 16 * BS)).toEqual(base);
    expect(await w.read(100 * BS, 32 * BS)).toEqual(top);
    expect((await w.check()).ok).toBe(true);
    await w.close();
  });
});

describe('copy pass (consolidation, mirror) writes through Layer.stageBlocks', () => {
  it('a failed in-place overwrite under the lock gives back the new slots of its batch and records nothing', async () => {
    const ns = new TrapNamespace();
    const src = await Layer.create(ns, 'S', BS);
    const dst = await Layer.create(ns, 'D', BS);
    const rng = new Rng(7);
    const s = blocksOf(rng, 8);
    await src.putBlocks(batchFromRuns([0, 8], s, scanBlocks(s, BS)));
    const d = blocksOf(rng, 4);
    await dst.putBlocks(batchFromRuns([0, 4], d, scanBlocks(d, BS)));
    await src.flush();
    await dst.flush();
    const blocks = [0, 1, 2, 3, 4, 5, 6, 7];
    const before = stateOf(dst, blocks);
    const slotCount = dst.slotCount;
    // blocks 4..7 get new slots (written unlocked); blocks 0..3 are overwritten in place under the lock, which fails
    await expect(
      copyPass(layerSource(src), dst, blocks, {
        batchBytes: 8 * BS,
        overwrite: true,
        exclusive: async (fn) => {
          ns.failing.add(dataName('D'));
          try {
            return await fn();
          } finally {
            ns.failing.clear();
          }
        },
        stale: () => false,
        step: async () => {},
      }),
    ).rejects.toThrow(/Injected write failure/);
    expect(stateOf(dst, blocks)).toEqual(before);
    const got: number[] = [];
    dst.allocate(4, got);
    expect(got).toEqual([0, 1, 2, 3].map((i) => slotCount + i));
    await src.close();
    await dst.close();
  });
});
