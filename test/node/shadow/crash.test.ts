/**
 * Crash tests of the shadow formats (catalog + diff-area logs) with the fault-injecting store:
 * a seeded workload of writes, creations, deletions, full diff areas (both policies), flushes
 * and reopens is crashed at every mutating store call (torn as a prefix or as random sectors;
 * unflushed writes kept, dropped or randomly torn). After reopening, every shadow copy reads
 * exactly what the volume held when it was taken, or is reported lost (policy 'drop' only);
 * no committed copy is missing and no deleted one is back. STRATADISK_LONG=1 sweeps more seeds.
 */
import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { ShadowVolume } from '../../../src/shadow/index.js';
import { FaultController, FaultNamespace, FaultStore, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryBacking, MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { Rng, equalBytes } from '../helpers/random.js';

const long = process.env.STRATADISK_LONG === '1';
const BS = 512;
const BLOCKS = 24;

interface CopyModel {
  name: string;
  content: Uint8Array;
  onFull: 'drop' | 'fail';
  /** creating: the call may not have finished; deleting: likewise */
  status: 'creating' | 'live' | 'deleting' | 'deleted' | 'lost';
}

interface World {
  ns: MemoryNamespace;
  backing: MemoryBacking;
  model: Uint8Array;
  copies: CopyModel[];
}

function world(seed: number): World {
  const model = new Rng(seed).bytes(BS * BLOCKS);
  return { ns: new MemoryNamespace(), backing: new MemoryBacking(model.slice()), model, copies: [] };
}

/** The workload; throws at the injected crash. Records in `w` what each step was doing. */
async function workload(w: World, ctl: FaultController, seed: number, durability: 'strict' | 'lazy'): Promise<void> {
  const rng = new Rng(seed);
  const fns = new FaultNamespace(w.ns, ctl);
  const open = () => ShadowVolume.open(new FaultStore(new MemoryStore(w.backing), ctl, 'volume'), fns, { blockSize: BS, sharedMemory: false, durability });
  let sv = await open();
  let n = 0;
  for (let step = 0; step < 60; step++) {
    const r = rng.next();
    const live = w.copies.filter((c) => c.status === 'live');
    if (r < 0.12 && live.length < 4) {
      const small = rng.next() < 0.5;
      const c: CopyModel = { name: `c${n++}`, content: w.model.slice(), onFull: rng.next() < 0.5 ? 'drop' : 'fail', status: 'creating' };
      w.copies.push(c);
      await sv.createShadow({ name: c.name, onFull: c.onFull, maxBytes: small ? 4096 + 3 * (512 + 2 * BS) : null });
      c.status = 'live';
    } else if (r < 0.2 && live.length > 0) {
      const c = rng.pick(live);
      c.status = 'deleting';
      await sv.deleteShadow(c.name);
      c.status = 'deleted';
    } else if (r < 0.24) {
      await sv.flush();
    } else if (r < 0.28) {
      await sv.close();
      sv = await open();
    } else {
      const len = rng.pick([1, BS, 2 * BS + 3, rng.int(5 * BS) + 1]);
      const off = rng.int(BS * BLOCKS - len + 1);
      const data = rng.bytes(len);
      // a write may drop copies (policy 'drop'): mark the candidates until we know
      const before = new Set(sv.lost().map((x) => x.name));
      try {
        await sv.write(off, data);
        w.model.set(data, off);
      } catch (e) {
        if (!isStrataError(e, 'quota')) throw e;
      }
      for (const x of sv.lost()) if (!before.has(x.name)) w.copies.find((c) => c.name === x.name)!.status = 'lost';
    }
  }
  await sv.close();
}

async function verify(w: World, crashing: boolean, durability: 'strict' | 'lazy'): Promise<void> {
  const sv = await ShadowVolume.open(new MemoryStore(w.backing), w.ns, { sharedMemory: false });
  try {
    const listed = new Set(sv.list().map((c) => c.name));
    const lost = new Set(sv.lost().map((c) => c.name));
    for (const c of w.copies) {
      const ctx = `${c.name} (${c.status})`;
      if (listed.has(c.name)) {
        expect(['creating', 'live', 'deleting', 'lost'].includes(c.status) && !(c.status === 'lost' && !crashing), ctx).toBe(true);
        const got = await sv.openShadow(c.name).read(0, BS * BLOCKS);
        expect(equalBytes(got, c.content), `${ctx} reads what the volume held when it was taken`).toBe(true);
      } else if (lost.has(c.name)) {
        // strict: only a full 'drop' copy may be lost; lazy: a crash with unflushed preservations loses all
        if (!(durability === 'lazy' && crashing)) expect(c.onFull, ctx).toBe('drop');
        expect(() => sv.openShadow(c.name)).toThrow(expect.objectContaining({ code: 'quota' }));
      } else {
        expect(['creating', 'deleting', 'deleted'].includes(c.status) || (c.status === 'lost' && !crashing), `${ctx} is missing`).toBe(true);
      }
    }
    // Writing after recovery keeps every copy exact.
    await sv.write(0, new Uint8Array(BS * BLOCKS).fill(0xee)).catch((e: unknown) => {
      if (!isStrataError(e, 'quota')) throw e; // a full 'fail' copy refuses it: also fine
    });
    for (const name of sv.list().map((c) => c.name)) {
      const c = w.copies.find((x) => x.name === name)!;
      expect(equalBytes(await sv.openShadow(name).read(0, BS * BLOCKS), c.content), `${name} after a write following recovery`).toBe(true);
    }
  } finally {
    await sv.close();
  }
}

describe('shadow crash sweep', () => {
  const seeds = long ? [1, 2, 3, 4, 5, 6, 7, 8] : [1, 2];
  const cases = seeds.flatMap((seed) => (['strict', 'lazy'] as const).map((durability) => ({ seed, durability })));
  for (const { seed, durability } of cases) {
    it(`seed ${seed}, ${durability}: a crash at every store write leaves every copy exact or reported lost`, async () => {
      await loadKernels();
      const clean = world(seed);
      const ctl0 = new FaultController();
      await workload(clean, ctl0, seed, durability);
      await verify(clean, false, durability);
      const total = ctl0.writes;
      expect(total).toBeGreaterThan(50);
      const modes: CrashMode[] = ['drop-unflushed', 'keep-unflushed', 'random'];
      const tears: TearMode[] = ['prefix', 'sectors', 'none', 'full'];
      let crashed = 0;
      for (let k = 0; k < total; k++) {
        const w = world(seed);
        const ctl = new FaultController({ crashAt: k, tear: tears[k % tears.length], seed: k + 1, sectorSize: 512 });
        try {
          await workload(w, ctl, seed, durability);
        } catch (e) {
          if (!ctl.crashed) throw e;
          crashed++;
        }
        await ctl.crash(modes[k % modes.length]);
        try {
          await verify(w, true, durability);
        } catch (e) {
          throw new Error(`crash at write ${k} of ${total} (${modes[k % modes.length]}, tear ${tears[k % tears.length]}): ${String(e)}`, { cause: e });
        }
      }
      expect(crashed).toBe(total);
    });
  }
});
