/**
 * What a caller of a strict shadow writer may rely on while writes wait for their group commit
 * (a write that preserves old blocks returns once its old blocks are read and its data queued;
 * the volume is written at the commit):
 * - read-your-writes at once: a read started after a write returned sees it, even when a commit
 *   writes it to the volume (and forgets it) while the read is under way; a copy sees old bytes;
 * - a failed commit keeps its writes (reads still see them) and its error reaches the write or
 *   flush that ran it, with a stable code; every later write retries it first and fails, queueing
 *   nothing, while it keeps failing; a flush that resolves made every acknowledged write durable;
 * - a retried commit never lets a write of its failed attempt land after a later write;
 * - a diff area that reports 'quota' only at the commit gets its policy applied ('drop' hands
 *   the blocks to older areas; 'fail' refuses writes until that copy is deleted).
 * Interleavings are forced with gates on memory stores, never with timing.
 */
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { ShadowVolume } from '../../../src/shadow/index.js';
import { FaultController, FaultNamespace, FaultStore } from '../../../src/store/fault.js';
import { MemoryBacking, MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import type { OpenOptions, StoreNamespace } from '../../../src/store/store.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { Rng, equalBytes } from '../helpers/random.js';
import { Gate, GatedStore, settle } from './gated-store.js';

const BS = 512;
const N = 64;

async function gated(seed: number): Promise<{ sv: ShadowVolume; vol: GatedStore; backing: MemoryBacking; model: Uint8Array }> {
  await loadKernels();
  const model = new Rng(seed).bytes(BS * N);
  const backing = new MemoryBacking(model.slice());
  const vol = new GatedStore(new MemoryStore(backing), 'volume');
  const sv = await ShadowVolume.open(vol, new MemoryNamespace(), { blockSize: BS, sharedMemory: false });
  return { sv, vol, backing, model };
}

const fill = (v: number, n = BS): Uint8Array => new Uint8Array(n).fill(v);

describe('strict shadow writes waiting for their group commit', () => {
  it('a read started after a write returned sees it, though a commit writes it to the volume (and queues the next batch where it was) during the read', async () => {
    const { sv, vol, backing, model } = await gated(31);
    await sv.createShadow({ name: 'a' });
    const atA = model.slice();
    const A = fill(0xa1);
    await sv.write(5 * BS, A); // a first overwrite: its data waits for the group commit
    expect(equalBytes(backing.buf.subarray(5 * BS, 6 * BS), atA.subarray(5 * BS, 6 * BS))).toBe(true);
    const gate = new Gate();
    vol.afterRead = () => {
      vol.afterRead = null;
      return gate.wait();
    };
    const read = sv.read(5 * BS, BS);
    await gate.reached; // the read holds the volume's bytes from before the commit
    await sv.flush(); // the commit writes A to the volume and empties the queue
    await sv.write(9 * BS, fill(0xb2)); // the next batch's data is queued where A's was
    gate.open();
    expect(await read).toEqual(A);
    expect(equalBytes(await sv.openShadow('a').read(0, BS * N), atA)).toBe(true);
    await sv.close();
  });

  it('a commit retried after a failed volume write never lets a write of the failed attempt land after a later write to the same block', async () => {
    const { sv, vol, backing } = await gated(32);
    await sv.createShadow({ name: 'a' });
    const A = fill(0xa1), C = fill(0xc3), B = fill(0xb2);
    await sv.write(5 * BS, A); // first overwrites of blocks 5 and 7: one wave at the commit
    await sv.write(7 * BS, C);
    await sv.write(5 * BS, B); // block 5 again: a later wave
    const held = new Gate();
    let holdFirst = true, failFirst = true;
    vol.beforeWrite = (offset) => {
      if (offset === 5 * BS && holdFirst) {
        holdFirst = false;
        return held.wait(); // the first write of A is slow
      }
      if (offset === 7 * BS && failFirst) {
        failFirst = false;
        throw new StrataError('io', 'injected write failure');
      }
    };
    const first = sv.flush();
    first.catch(() => {});
    await held.reached;
    await settle();
    const second = sv.flush(); // retries the commit
    second.catch(() => {});
    await settle();
    held.open(); // the slow write of A from the failed attempt lands now
    await expect(first).rejects.toMatchObject({ code: 'io' });
    await second;
    expect(backing.buf.subarray(5 * BS, 6 * BS)).toEqual(B);
    expect(backing.buf.subarray(7 * BS, 8 * BS)).toEqual(C);
    expect(await sv.read(5 * BS, BS)).toEqual(B);
    await sv.close();
  });

  it('a store error that is not a StrataError reaches the flush as code io, and the writes stay readable', async () => {
    const { sv, vol, model } = await gated(33);
    await sv.createShadow({ name: 'a' });
    const d = fill(0x5a, 3 * BS);
    await sv.write(10 * BS, d);
    model.set(d, 10 * BS);
    vol.beforeWrite = () => {
      throw new Error('EIO: i/o error, write');
    };
    const err = await sv.flush().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(StrataError);
    expect((err as StrataError).code).toBe('io');
    expect((err as StrataError).message).toContain('EIO');
    expect(equalBytes(await sv.read(0, BS * N), model)).toBe(true);
    vol.beforeWrite = null;
    await sv.flush();
    expect(equalBytes(await sv.read(0, BS * N), model)).toBe(true);
    await sv.close();
  });
});

describe('deferred group-commit errors', () => {
  interface Setup {
    sv: ShadowVolume;
    ctl: FaultController;
    backing: MemoryBacking;
    ns: MemoryNamespace;
    model: Uint8Array;
    atA: Uint8Array;
  }

  async function faulty(seed: number): Promise<Setup> {
    await loadKernels();
    const model = new Rng(seed).bytes(BS * N);
    const backing = new MemoryBacking(model.slice());
    const ns = new MemoryNamespace();
    const ctl = new FaultController();
    const sv = await ShadowVolume.open(new FaultStore(new MemoryStore(backing), ctl, 'volume'), new FaultNamespace(ns, ctl), { blockSize: BS, sharedMemory: false });
    await sv.createShadow({ name: 'a' });
    return { sv, ctl, backing, ns, model, atA: model.slice() };
  }

  /** Fail the next `n` mutating store calls (writes, truncates), wherever they go. */
  const failNext = (ctl: FaultController, n: number): void => {
    ctl.plan = { failAt: new Set(Array.from({ length: n }, (_, i) => ctl.writes + i)) };
  };

  /** After a power loss (unflushed writes dropped), reopen: the volume and copy `a` as they are on the stores. */
  async function afterCrash(s: Setup): Promise<{ volume: Uint8Array; a: Uint8Array }> {
    await s.ctl.crash('drop-unflushed');
    const sv = await ShadowVolume.open(new MemoryStore(s.backing), s.ns, { sharedMemory: false });
    try {
      return { volume: await sv.read(0, BS * N), a: await sv.openShadow('a').read(0, BS * N) };
    } finally {
      await sv.close();
    }
  }

  it('the write that runs a failing commit gets its error; later writes retry it first and fail without queueing; a flush that resolves makes every acknowledged write durable', async () => {
    const s = await faulty(41);
    const rng = new Rng(42);
    // 255 small writes (first overwrites and rewrites): all wait for one commit
    for (let i = 0; i < 255; i++) {
      const off = rng.int(BS * N - 16);
      const d = rng.bytes(16);
      await s.sv.write(off, d);
      s.model.set(d, off);
    }
    failNext(s.ctl, 1000);
    // the 256th write runs the group commit, which fails
    const d256 = fill(0x77, 16);
    await expect(s.sv.write(100, d256)).rejects.toMatchObject({ code: 'io' });
    s.model.set(d256, 100); // a failed write may still be applied (its data waited in the batch)
    // while the commit keeps failing, a write is refused and changes nothing
    await expect(s.sv.write(3 * BS, fill(0x99, BS))).rejects.toMatchObject({ code: 'io' });
    await expect(s.sv.flush()).rejects.toMatchObject({ code: 'io' });
    // the acknowledged writes are still there for readers of the volume; the copy is unchanged
    expect(equalBytes(await s.sv.read(0, BS * N), s.model)).toBe(true);
    expect(equalBytes(await s.sv.openShadow('a').read(0, BS * N), s.atA)).toBe(true);
    s.ctl.plan = {};
    await s.sv.flush();
    expect(equalBytes(await s.sv.read(0, BS * N), s.model)).toBe(true);
    const after = await afterCrash(s);
    expect(equalBytes(after.volume, s.model)).toBe(true);
    expect(equalBytes(after.a, s.atA)).toBe(true);
  });

  it('a failing diff-area write or fsync at the commit a flush runs rejects that flush; the next one rewrites the record and everything is durable', async () => {
    for (const how of ['write', 'fsync'] as const) {
      const s = await faulty(43);
      const rng = new Rng(44);
      for (let i = 0; i < 20; i++) {
        const len = rng.pick([1, BS, 2 * BS + 5]);
        const off = rng.int(BS * N - len + 1);
        const d = rng.bytes(len);
        await s.sv.write(off, d);
        s.model.set(d, off);
      }
      if (how === 'write') failNext(s.ctl, 1);
      else s.ctl.plan = { failFlushAt: new Set([s.ctl.flushes]) };
      await expect(s.sv.flush(), how).rejects.toMatchObject({ code: 'io' });
      expect(equalBytes(await s.sv.read(0, BS * N), s.model), how).toBe(true);
      s.ctl.plan = {};
      await s.sv.flush();
      const after = await afterCrash(s);
      expect(equalBytes(after.volume, s.model), `${how}: volume`).toBe(true);
      expect(equalBytes(after.a, s.atA), `${how}: copy a`).toBe(true);
    }
  });
});

describe('a diff area that runs out of space only at the group commit (a sparse file allocating on write)', () => {
  /** A namespace whose diff-area stores are gated (so a test can make one report 'quota' on write). */
  function gatedNs(ns: MemoryNamespace, stores: Map<string, GatedStore>): StoreNamespace {
    return new Proxy(ns, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (prop === 'open') {
          return async (name: string, options?: OpenOptions) => {
            const s = await target.open(name, options);
            if (!name.endsWith('.diff')) return s;
            const g = new GatedStore(s, name);
            stores.set(name, g);
            return g;
          };
        }
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  const diskFull = (): never => {
    throw new StrataError('quota', 'Cannot write: no space left on the device.');
  };

  async function setup(policies: ('drop' | 'fail')[]) {
    await loadKernels();
    const model = new Rng(71).bytes(BS * N);
    const backing = new MemoryBacking(model.slice());
    const ns = new MemoryNamespace();
    const stores = new Map<string, GatedStore>();
    const sv = await ShadowVolume.open(new MemoryStore(backing), gatedNs(ns, stores), { blockSize: BS, sharedMemory: false });
    const taken: Uint8Array[] = [];
    for (const [i, onFull] of policies.entries()) {
      await sv.createShadow({ name: `c${i}`, onFull });
      taken.push(model.slice());
      const d = fill(0x30 + i, 2 * BS); // each copy gets blocks of its own
      await sv.write((20 + 2 * i) * BS, d);
      model.set(d, (20 + 2 * i) * BS);
      await sv.flush();
    }
    const rng = new Rng(72);
    for (let i = 0; i < 12; i++) {
      const len = rng.pick([7, BS, 3 * BS]);
      const off = rng.int(BS * N - len + 1);
      const d = rng.bytes(len);
      await sv.write(off, d); // first overwrites since the newest copy: they wait in the batch
      model.set(d, off);
    }
    const newest = stores.get(`S${String(policies.length).padStart(6, '0')}.diff`)!;
    newest.beforeWrite = diskFull;
    const reopen = async () => {
      newest.beforeWrite = null; // space was freed (close seals every area)
      await sv.close();
      return ShadowVolume.open(new MemoryStore(backing), ns, { sharedMemory: false });
    };
    return { sv, model, taken, reopen };
  }

  for (const copies of [1, 2]) {
    it(`policy 'drop', ${copies} cop${copies === 1 ? 'y' : 'ies'}: the newest copy is dropped, older ones take the blocks, the writes go on`, async () => {
      const s = await setup(Array.from({ length: copies }, () => 'drop' as const));
      await s.sv.flush();
      expect(s.sv.lost().map((c) => c.name)).toEqual([`c${copies - 1}`]);
      expect(equalBytes(await s.sv.read(0, BS * N), s.model)).toBe(true);
      for (let i = 0; i < copies - 1; i++) expect(equalBytes(await s.sv.openShadow(`c${i}`).read(0, BS * N), s.taken[i]!), `c${i}`).toBe(true);
      const sv = await s.reopen();
      expect(equalBytes(await sv.read(0, BS * N), s.model)).toBe(true);
      for (let i = 0; i < copies - 1; i++) expect(equalBytes(await sv.openShadow(`c${i}`).read(0, BS * N), s.taken[i]!), `c${i} after reopen`).toBe(true);
      await sv.close();
    });
  }

  it("policy 'fail': writes and flushes fail with quota, reads still see the writes; deleting that copy is the way out and the others stay exact", async () => {
    const s = await setup(['drop', 'fail']);
    await expect(s.sv.flush()).rejects.toMatchObject({ code: 'quota' });
    await expect(s.sv.write(0, fill(1, 4))).rejects.toMatchObject({ code: 'quota' });
    expect(equalBytes(await s.sv.read(0, BS * N), s.model)).toBe(true);
    expect(equalBytes(await s.sv.openShadow('c1').read(0, BS * N), s.taken[1]!)).toBe(true);
    await s.sv.deleteShadow('c1');
    await s.sv.flush();
    expect(s.sv.list().map((c) => c.name)).toEqual(['c0']);
    expect(equalBytes(await s.sv.read(0, BS * N), s.model)).toBe(true);
    expect(equalBytes(await s.sv.openShadow('c0').read(0, BS * N), s.taken[0]!)).toBe(true);
    const sv = await s.reopen();
    expect(equalBytes(await sv.read(0, BS * N), s.model)).toBe(true);
    expect(equalBytes(await sv.openShadow('c0').read(0, BS * N), s.taken[0]!)).toBe(true);
    await sv.close();
  });
});
