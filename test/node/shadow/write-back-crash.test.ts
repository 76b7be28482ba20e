/**
 * Crash sweep of the strict writer's group commit, checking the volume as well as the copies:
 * a seeded workload of writes (first overwrites, rewrites, partial and multi-block, enough
 * between flushes for commits run by a full batch), flushes, copies taken and deleted, is
 * crashed at every mutating store call (torn as a prefix or as random sectors; unflushed writes
 * kept, dropped or randomly torn). After reopening:
 * - every listed copy reads exactly what the volume held when it was taken (never new bytes);
 * - every byte of the volume holds what it held at the last flush that resolved, or what a write
 *   issued after that flush put there: flushed writes are durable, and no byte reads what
 *   nobody wrote.
 * During the workload every read of the live volume right after a write returns that write.
 */
import { describe, expect, it } from 'vitest';
import { ShadowVolume } from '../../../src/shadow/index.js';
import { FaultController, FaultNamespace, FaultStore, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryBacking, MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { Rng, equalBytes } from '../helpers/random.js';

const BS = 512;
const N = 48;

interface World {
  ns: MemoryNamespace;
  backing: MemoryBacking;
  /** what the volume reads as now (every write that returned) */
  model: Uint8Array;
  /** what it held when the last flush resolved */
  durable: Uint8Array;
  /** writes issued since then (the one under way included) */
  since: { offset: number; data: Uint8Array }[];
  copies: { name: string; content: Uint8Array; status: 'creating' | 'live' | 'deleting' | 'deleted' }[];
}

function world(seed: number): World {
  const model = new Rng(seed).bytes(BS * N);
  return { ns: new MemoryNamespace(), backing: new MemoryBacking(model.slice()), model, durable: model.slice(), since: [], copies: [] };
}

function flushed(w: World): void {
  w.durable = w.model.slice();
  w.since = [];
}

async function workload(w: World, ctl: FaultController, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const open = () => ShadowVolume.open(new FaultStore(new MemoryStore(w.backing), ctl, 'volume'), new FaultNamespace(w.ns, ctl), { blockSize: BS, sharedMemory: false });
  let sv = await open();
  let n = 0;
  const write = async () => {
    const len = rng.pick([1, 16, BS, BS + 7, 3 * BS, rng.int(4 * BS) + 1]);
    const off = rng.int(BS * N - len + 1);
    const d = rng.bytes(len);
    w.since.push({ offset: off, data: d });
    await sv.write(off, d);
    w.model.set(d, off);
    // read-your-writes, at once
    if (!equalBytes(await sv.read(off, len), d)) throw new Error(`a read right after the write of ${len} bytes at ${off} did not return them`);
  };
  for (let step = 0; step < 12; step++) {
    const r = rng.next();
    const live = w.copies.filter((c) => c.status === 'live');
    if (step === 0 || (step !== 4 && r < 0.25 && live.length < 3)) {
      const c = { name: `c${n++}`, content: w.model.slice(), status: 'creating' as 'creating' | 'live' | 'deleting' | 'deleted' };
      w.copies.push(c);
      await sv.createShadow({ name: c.name });
      c.status = 'live';
      flushed(w); // creating a copy flushes the volume first
    } else if (step !== 4 && r < 0.35 && live.length > 1) {
      const c = rng.pick(live);
      c.status = 'deleting';
      await sv.deleteShadow(c.name);
      c.status = 'deleted';
    } else if (step !== 4 && r < 0.42) {
      await sv.close();
      flushed(w);
      sv = await open();
    } else {
      // a burst; once past one batch (256 writes), so a write runs the commit
      const k = step === 4 ? 257 : rng.int(12) + 1;
      for (let i = 0; i < k; i++) await write();
      if (rng.next() < 0.6) {
        await sv.flush();
        flushed(w);
      }
    }
  }
  await sv.close();
  flushed(w);
}

async function verify(w: World): Promise<void> {
  const sv = await ShadowVolume.open(new MemoryStore(w.backing), w.ns, { sharedMemory: false });
  try {
    const listed = new Set(sv.list().map((c) => c.name));
    expect(sv.lost()).toEqual([]);
    for (const c of w.copies) {
      if (listed.has(c.name)) {
        expect(c.status, c.name).not.toBe('deleted');
        expect(equalBytes(await sv.openShadow(c.name).read(0, BS * N), c.content), `${c.name} (${c.status}) reads what the volume held when it was taken`).toBe(true);
      } else {
        expect(['creating', 'deleting', 'deleted'], `${c.name} is missing`).toContain(c.status);
      }
    }
    const got = await sv.read(0, BS * N);
    const written = new Uint8Array(got.length); // 1 where some write since the last flush put this byte there
    for (const x of w.since) for (let i = 0; i < x.data.length; i++) if (x.data[i] === got[x.offset + i]) written[x.offset + i] = 1;
    for (let p = 0; p < got.length; p++) {
      if (got[p] !== w.durable[p] && !written[p]) throw new Error(`volume byte ${p} (block ${Math.floor(p / BS)}) reads ${got[p]}: neither its value at the last flush (${w.durable[p]}) nor one written since`);
    }
  } finally {
    await sv.close();
  }
}

describe('strict group commit crash sweep (copies and volume)', () => {
  for (const seed of process.env.STRATADISK_LONG === '1' ? [51, 52, 53, 54, 55, 56] : [51, 53]) {
    it(`seed ${seed}: a crash at every store write keeps every copy exact, every flushed write, and no byte nobody wrote`, async () => {
      await loadKernels();
      const clean = world(seed);
      const ctl0 = new FaultController();
      await workload(clean, ctl0, seed);
      await verify(clean);
      const total = ctl0.writes;
      expect(total).toBeGreaterThan(20);
      console.log(`seed ${seed}: ${total} store writes`);
      const modes: CrashMode[] = ['drop-unflushed', 'keep-unflushed', 'random'];
      const tears: TearMode[] = ['prefix', 'sectors', 'none', 'full'];
      for (let k = 0; k < total; k++) {
        const w = world(seed);
        const ctl = new FaultController({ crashAt: k, tear: tears[k % tears.length], seed: k + 1, sectorSize: 512 });
        const failed = await workload(w, ctl, seed).then(() => null, (e: unknown) => e);
        if (!ctl.crashed) throw new Error(`crash at write ${k}: the workload ${failed ? `failed before the crash: ${String(failed)}` : 'finished without crashing'}`);
        await ctl.crash(modes[k % modes.length]);
        try {
          await verify(w);
        } catch (e) {
          throw new Error(`crash at write ${k} of ${total} (${modes[k % modes.length]}, tear ${tears[k % tears.length]}): ${String(e)}`, { cause: e });
        }
      }
    });
  }
});
