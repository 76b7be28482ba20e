/**
 * A mirror reads the source's layers without the lock while the volume is written. A block the
 * writer rewrites in place during that read arrives as new bytes beside the checksum taken just
 * before: it looked damaged, and a loaded CI run failed such a mirror with `checksum-mismatch`.
 * The batch is now read again under the write lock; only damage still there fails the pass.
 */
import { describe, expect, it } from 'vitest';
import { mirror } from '../../../src/jobs/mirror.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import type { Store, StoreNamespace } from '../../../src/store/store.js';
import { Volume } from '../../../src/volume/volume.js';

const BS = 4096;

/** Runs `hook` before every read of the store `name`. */
class HookNamespace implements StoreNamespace {
  hook: ((offset: number, length: number) => Promise<void>) | null = null;
  constructor(readonly inner: StoreNamespace, private readonly name: string) {}
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  async open(name: string, options?: Parameters<StoreNamespace['open']>[1]): Promise<Store> {
    const s = await this.inner.open(name, options);
    if (name !== this.name) return s;
    return new Proxy(s, {
      get: (t, p) => {
        if (p === 'readInto') {
          return async (o: number, target: Uint8Array) => {
            if (this.hook) await this.hook(o, target.length);
            return t.readInto(o, target);
          };
        }
        const v = Reflect.get(t, p, t) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
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

describe('a mirror reading a layer while its block is rewritten in place', () => {
  it('does not report damage: the batch is read again under the lock, and the copy holds the new bytes', async () => {
    const ns = new HookNamespace(new MemoryNamespace(), 'L000001.data');
    const vol = await Volume.create(ns, { size: 64 * BS, blockSize: BS });
    for (let b = 0; b < 8; b++) await vol.write(b * BS, new Uint8Array(BS).fill(b + 1));
    const first = new Uint8Array(BS).fill(0xdd);
    const fresh = new Uint8Array(BS).fill(0xee);
    // One block per batch. While the pass reads block 0, block 5 is written: after the job's
    // flush, so into a new slot (one allocated since the last flush may be overwritten in
    // place). While the pass then reads block 5 from that slot, with the checksum of `first`
    // in hand, block 5 is written again: in place, so the read returns `fresh`.
    let reads = 0;
    let rewritten = false;
    ns.hook = async (_offset, length) => {
      if (length !== BS) return;
      reads++;
      if (reads === 1) await vol.write(5 * BS, first);
      if (reads === 6) {
        await vol.write(5 * BS, fresh);
        rewritten = true;
      }
    };
    const target = new MemoryNamespace();
    const job = mirror(vol, target, { journal: false, switchOver: false, batchBytes: BS });
    await job.done;
    ns.hook = null;
    expect(rewritten).toBe(true);
    const copy = await Volume.open(target);
    expect(await copy.read(5 * BS, BS)).toEqual(fresh);
    for (const b of [0, 1, 2, 3, 4, 6, 7]) expect(await copy.read(b * BS, BS)).toEqual(new Uint8Array(BS).fill(b + 1));
    await copy.close();
  });

  it('damage that is still there under the lock fails the mirror with checksum-mismatch', async () => {
    const inner = new MemoryNamespace();
    const ns = new HookNamespace(inner, 'L000001.data');
    const vol = await Volume.create(ns, { size: 64 * BS, blockSize: BS });
    for (let b = 0; b < 8; b++) await vol.write(b * BS, new Uint8Array(BS).fill(b + 1));
    await vol.flush();
    // flip a byte of block 3 in the layer's data file behind the volume's back
    const raw = await inner.open('L000001.data');
    const byte = new Uint8Array(1);
    await raw.readInto(3 * BS + 17, byte);
    byte[0]! ^= 0xff;
    await raw.write(3 * BS + 17, byte);
    await raw.close();
    const job = mirror(vol, new MemoryNamespace(), { journal: false });
    await expect(job.done).rejects.toMatchObject({ code: 'checksum-mismatch' });
  });
});
