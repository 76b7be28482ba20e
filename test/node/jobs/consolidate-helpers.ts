import { MemoryNamespace } from '../../../src/store/memory.js';
import type { Store, StoreNamespace } from '../../../src/store/store.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';

export const BS = 4096;
export const BLOCKS = 64;
export const SIZE = BS * BLOCKS;

/** The reference model: what the live volume and each snapshot must read. */
export interface Model {
  live: Uint8Array;
  snaps: Map<string, Uint8Array>;
}

/** A volume with snapshots s0 <- s1 <- s2 <- active, each layer holding random writes; returns the model. */
export async function buildChain(ns: StoreNamespace, rng: Rng, layers = 3): Promise<{ vol: Volume; model: Model }> {
  const vol = await Volume.create(ns, { size: SIZE, blockSize: BS });
  const model: Model = { live: new Uint8Array(SIZE), snaps: new Map() };
  for (let l = 0; l <= layers; l++) {
    for (let i = 0; i < 24; i++) await randomWrite(vol, model, rng, i + l * 100);
    if (l < layers) {
      await vol.snapshot(`s${l}`);
      model.snaps.set(`s${l}`, model.live.slice());
    }
  }
  await vol.flush();
  return { vol, model };
}

/** One random write (whole blocks, partial blocks, zeros) applied to the volume and the model. */
export async function randomWrite(vol: Volume, model: Model, rng: Rng, tag: number): Promise<void> {
  const r = rng.next();
  const len = rng.pick([1, 100, BS, BS, 2 * BS, 3 * BS + 5]);
  const off = rng.next() < 0.6 ? rng.int(BLOCKS - 3) * BS : rng.int(SIZE - len);
  const data = r < 0.1 ? new Uint8Array(len) : rng.bytes(len, tag);
  await vol.write(off, data);
  model.live.set(data, off);
}

/** First mismatch between the volume and the model, or null. */
export async function compare(vol: Volume, model: Model): Promise<string | null> {
  const live = await vol.read(0, SIZE);
  if (!same(live, model.live)) return 'live view differs from the model';
  const names = vol.snapshots().map((s) => s.name).sort();
  const want = [...model.snaps.keys()].sort();
  if (names.join() !== want.join()) return `snapshots [${names}] != model [${want}]`;
  for (const n of names) {
    if (!same(await vol.openSnapshot(n).read(0, SIZE), model.snaps.get(n)!)) return `snapshot ${n} differs`;
  }
  return null;
}

export function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export { MemoryNamespace };

/**
 * A namespace whose reads and writes each wait a seeded random number of event-loop turns, so
 * a writer and a job really interleave (memory stores alone resolve in microtask order).
 */
export class JitterNamespace implements StoreNamespace {
  constructor(readonly inner: StoreNamespace, private readonly rng: Rng) {}
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  private async jitter(): Promise<void> {
    const n = this.rng.int(3);
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  }
  async open(name: string, options?: Parameters<StoreNamespace['open']>[1]): Promise<Store> {
    const s = await this.inner.open(name, options);
    const j = () => this.jitter();
    return {
      get size() {
        return s.size;
      },
      readOnly: s.readOnly,
      resizable: s.resizable,
      async read(o, l) {
        await j();
        return s.read(o, l);
      },
      async readInto(o, t) {
        await j();
        return s.readInto(o, t);
      },
      async write(o, d) {
        const copy = d.slice();
        await j();
        return s.write(o, copy);
      },
      flush: () => s.flush(),
      truncate: (n) => s.truncate(n),
      close: () => s.close(),
    };
  }
  exists(name: string) {
    return this.inner.exists(name);
  }
  list() {
    return this.inner.list();
  }
  delete(name: string) {
    return this.inner.delete(name);
  }
  sync() {
    return this.inner.sync();
  }
}
