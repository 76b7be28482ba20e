import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import type { OpenOptions, Store, StoreNamespace } from '../../../src/store/store.js';
import { SLOT_ABSENT } from '../../../src/volume/layer.js';
import { Volume, type OpenVolumeOptions } from '../../../src/volume/volume.js';
import { Rng, equalBytes } from '../helpers/random.js';

// Verify-on-read (issue 12, item 1): a damaged byte in a layer's data file is never returned by
// any read path; reads elsewhere go on; partial reads of a large block do not hash it every time.

const BS = 64 * 1024;
const SIZE = 32 * BS;

/** A namespace that counts the bytes read from `.data` stores (to see what verification costs). */
class CountingNamespace implements StoreNamespace {
  readBytes = 0;
  constructor(readonly inner: MemoryNamespace) {}
  get readOnly() {
    return this.inner.readOnly;
  }
  async open(name: string, options?: OpenOptions): Promise<Store> {
    const s = await this.inner.open(name, options);
    if (!name.endsWith('.data')) return s;
    const self = this;
    return new Proxy(s, {
      get(t, p) {
        if (p === 'readInto') return (o: number, b: Uint8Array) => ((self.readBytes += b.length), t.readInto(o, b));
        if (p === 'readIntoNow') return t.readIntoNow ? (o: number, b: Uint8Array) => ((self.readBytes += b.length), t.readIntoNow!(o, b)) : undefined;
        const v = Reflect.get(t, p);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
  }
  exists(n: string) {
    return this.inner.exists(n);
  }
  list() {
    return this.inner.list();
  }
  delete(n: string) {
    return this.inner.delete(n);
  }
  sync() {
    return this.inner.sync();
  }
}

/** base layer L000001 holds blocks 0..15 (snapshot `one`); the active layer L000002 holds 8..11. */
async function damagedVolume(): Promise<{ mem: MemoryNamespace; base: Uint8Array; live: Uint8Array }> {
  const mem = new MemoryNamespace();
  const v = await Volume.create(mem, { size: SIZE, blockSize: BS });
  const rng = new Rng(7);
  const base = new Uint8Array(SIZE);
  base.set(rng.bytes(16 * BS));
  await v.write(0, base.subarray(0, 16 * BS));
  await v.snapshot('one');
  const live = base.slice();
  live.set(rng.bytes(4 * BS), 8 * BS);
  await v.write(8 * BS, live.subarray(8 * BS, 12 * BS));
  await v.close();
  // Two bytes of block 3 flipped in the base layer's data file (slot 3: written in order).
  const f = mem.files.get('L000001.data')!;
  f.buf[3 * BS + 1000] ^= 0x01;
  f.buf[3 * BS + 1001] ^= 0x80;
  return { mem, base, live };
}

async function mismatch(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(isStrataError(e, 'checksum-mismatch'), `expected checksum-mismatch, got ${String(e)}`).toBe(true);
  return (e as Error).message;
}

async function open(mem: MemoryNamespace, options: OpenVolumeOptions = {}): Promise<Volume> {
  return Volume.open(mem, { readOnly: true, ...options });
}

describe('verify on read', () => {
  it('refuses a damaged block on every read shape, naming the volume, layer and byte range', async () => {
    const { mem, live } = await damagedVolume();
    const v = await open(mem);
    const damaged = [3 * BS, 4 * BS];
    // whole volume (resolve-runs path), a few blocks (lookup path), one whole block, a 4 KiB piece, an unaligned span
    for (const [off, len] of [[0, SIZE], [2 * BS, 3 * BS], [3 * BS, BS], [3 * BS + 4096, 4096], [3 * BS - 10, 20], [3 * BS + 1000, 1]]) {
      const msg = await mismatch(v.read(off!, len!));
      expect(msg).toContain('layer L000001');
      expect(msg).toContain(`bytes ${damaged[0]}-${damaged[1]! - 1}`);
    }
    // the synchronous path throws too
    expect(() => v.readIntoNow(3 * BS + 4096, new Uint8Array(4096))).toThrow(/checksum/);
    // the snapshot's view and the layer on its own
    await mismatch(v.openSnapshot('one').read(3 * BS, 4096));
    await mismatch(v.openLayer('L000001').read(0, 8 * BS));
    // everything else still reads, and right
    expect(equalBytes(await v.read(0, 3 * BS), live.subarray(0, 3 * BS))).toBe(true);
    expect(equalBytes(await v.read(4 * BS, SIZE - 4 * BS), live.subarray(4 * BS))).toBe(true);
    const t = new Uint8Array(4096);
    expect(v.readIntoNow(5 * BS + 100, t)).toBe(true);
    expect(equalBytes(t, live.subarray(5 * BS + 100, 5 * BS + 100 + 4096))).toBe(true);
    await v.close();
  });

  it('a block overwritten in the live layer reads fine over a damaged one below it', async () => {
    const { mem, live } = await damagedVolume();
    const w = await Volume.open(mem);
    const fresh = new Rng(3).bytes(BS);
    await w.write(3 * BS, fresh);
    live.set(fresh, 3 * BS);
    expect(equalBytes(await w.read(0, SIZE), live)).toBe(true);
    await mismatch(w.openSnapshot('one').read(3 * BS, BS));
    await w.close();
  });

  it('a partial write never copies damaged bytes up into the live layer', async () => {
    const { mem } = await damagedVolume();
    const w = await Volume.open(mem);
    await mismatch(w.write(3 * BS + 10, new Uint8Array(10).fill(1)));
    // nothing was written: the block still reads as damaged (not laundered under a new checksum)
    await mismatch(w.read(3 * BS, BS));
    expect(w.active.slot(3)).toBe(SLOT_ABSENT);
    await w.close();
  });

  it('a partial read of a large block reads it whole once, then only what it asks for', async () => {
    const { mem, live } = await damagedVolume();
    const counting = new CountingNamespace(mem);
    const v = await Volume.open(counting, { readOnly: true });
    counting.readBytes = 0;
    const t = new Uint8Array(4096);
    await v.readInto(5 * BS + 8192, t);
    expect(counting.readBytes).toBe(BS);
    expect(equalBytes(t, live.subarray(5 * BS + 8192, 5 * BS + 8192 + 4096))).toBe(true);
    for (let i = 0; i < 10; i++) await v.readInto(5 * BS + i * 4096, t);
    expect(counting.readBytes).toBe(BS + 10 * 4096);
    expect(equalBytes(t, live.subarray(5 * BS + 9 * 4096, 5 * BS + 10 * 4096))).toBe(true);
    // synchronous reads too
    counting.readBytes = 0;
    expect(v.readIntoNow(6 * BS, t)).toBe(true);
    expect(v.readIntoNow(6 * BS + 4096, t)).toBe(true);
    expect(counting.readBytes).toBe(BS + 4096);
    // a whole block read marks it verified as well
    counting.readBytes = 0;
    await v.read(7 * BS, BS);
    await v.read(7 * BS + 4096, 4096);
    expect(counting.readBytes).toBe(BS + 4096);
    await v.close();
  });

  it("mode 'always' re-checks the whole block on every partial read", async () => {
    const { mem } = await damagedVolume();
    const counting = new CountingNamespace(mem);
    const v = await Volume.open(counting, { readOnly: true, verify: 'always' });
    counting.readBytes = 0;
    for (let i = 0; i < 4; i++) await v.read(5 * BS + i * 4096, 4096);
    expect(counting.readBytes).toBe(4 * BS);
    await mismatch(v.read(3 * BS, 512));
    await v.close();
  });

  it("mode 'off' (benchmarks only) returns the stored bytes unchecked", async () => {
    const { mem, base } = await damagedVolume();
    const v = await open(mem, { verify: 'off' });
    const got = await v.read(3 * BS, BS);
    expect(equalBytes(got, base.subarray(3 * BS, 4 * BS))).toBe(false);
    await v.close();
    await expect(Volume.open(mem, { readOnly: true, verify: 'sometimes' as never })).rejects.toMatchObject({ code: 'invalid-argument' });
  });

  it('a block rewritten in place (fresh slot) is checked against its new checksum', async () => {
    const mem = new MemoryNamespace();
    const v = await Volume.create(mem, { size: SIZE, blockSize: BS });
    const rng = new Rng(11);
    const a = rng.bytes(BS);
    await v.write(0, a);
    expect(equalBytes(await v.read(100, 4096), a.subarray(100, 4196))).toBe(true);
    const b = rng.bytes(BS);
    await v.write(0, b); // same fresh slot, rewritten before any flush
    expect(equalBytes(await v.read(100, 4096), b.subarray(100, 4196))).toBe(true);
    await v.flush();
    const c = rng.bytes(4096);
    await v.write(8192, c);
    expect(equalBytes(await v.read(8192, 4096), c)).toBe(true);
    await v.close();
  });

  it('a mismatch in the middle of a long read leaves the blocks before it verified', async () => {
    const { mem } = await damagedVolume();
    const counting = new CountingNamespace(mem);
    const v = await Volume.open(counting, { readOnly: true });
    await mismatch(v.read(0, 16 * BS));
    counting.readBytes = 0;
    await v.read(BS + 10, 100);
    expect(counting.readBytes).toBe(100);
    await v.close();
  });

  it('random reads agree with a model and never return a byte of a damaged block (seeded)', async () => {
    const { mem, live } = await damagedVolume();
    const v = await open(mem);
    const rng = new Rng(2026);
    let refused = 0;
    for (let i = 0; i < 400; i++) {
      const len = rng.range(1, 3 * BS);
      const off = rng.int(SIZE - len);
      const touches = off < 4 * BS && off + len > 3 * BS;
      if (touches) {
        await mismatch(v.read(off, len));
        refused++;
      } else {
        expect(equalBytes(await v.read(off, len), live.subarray(off, off + len))).toBe(true);
      }
    }
    expect(refused).toBeGreaterThan(0);
    await v.close();
  });
});
