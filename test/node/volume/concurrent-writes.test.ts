/**
 * Concurrent writes (issue 15 item 2): writes of different blocks reach the store at once, writes
 * of the same block (a partial copy-up among them) one after the other; a read never sees half
 * of a write; flushes are group commits; a flush covers every write started before it.
 */
import { describe, expect, it } from 'vitest';
import { Volume } from '../../../src/volume/volume.js';
import { HookedNamespace } from '../helpers/hooked-namespace.js';

const BS = 4096;

/** A namespace whose data-store writes can be held, and which counts data and map syncs. */
class GatedNamespace extends HookedNamespace {
  hold = false;
  /** data writes that reached the store and wait for release */
  readonly waiting: (() => void)[] = [];
  dataFlushes = 0;
  mapFlushes = 0;
  protected override beforeWrite(name: string): Promise<void> | void {
    if (this.hold && name.endsWith('.data')) return new Promise<void>((r) => this.waiting.push(r));
  }
  protected override beforeFlush(name: string): void {
    if (name.endsWith('.data')) this.dataFlushes++;
    if (name.endsWith('.map')) this.mapFlushes++;
  }
  release(): void {
    for (const r of this.waiting.splice(0)) r();
  }
}

async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

async function newVolume(): Promise<{ ns: GatedNamespace; vol: Volume }> {
  const ns = new GatedNamespace();
  const vol = await Volume.create(ns, { size: 64 * BS, blockSize: BS });
  return { ns, vol };
}

describe('concurrent writes', () => {
  it('writes of different blocks are in the store at once; a write of the same block waits', async () => {
    const { ns, vol } = await newVolume();
    ns.hold = true;
    const w = [0, 5, 9, 20].map((b) => vol.write(b * BS, new Uint8Array(BS).fill(b + 1)));
    await settle();
    expect(ns.waiting.length).toBe(4); // all four writes reached the store together
    // a partial write into block 5 (a copy-up) waits for the whole-block write of block 5
    const partial = vol.write(5 * BS + 100, new Uint8Array([0xee, 0xee]));
    await settle();
    expect(ns.waiting.length).toBe(4);
    ns.hold = false;
    ns.release();
    await Promise.all([...w, partial]);
    const b5 = await vol.read(5 * BS, BS);
    const want = new Uint8Array(BS).fill(6);
    want[100] = want[101] = 0xee;
    expect(b5).toEqual(want);
    await vol.close();
  });

  it('two partial writes of one block keep both (neither copy-up is lost)', async () => {
    const { vol } = await newVolume();
    await vol.write(0, new Uint8Array(BS).fill(7));
    await vol.flush();
    const parts = [];
    for (let i = 0; i < 32; i++) parts.push(vol.write(i * 64, new Uint8Array(64).fill(100 + i)));
    await Promise.all(parts);
    const got = await vol.read(0, BS);
    for (let i = 0; i < 32; i++) expect(got.subarray(i * 64, i * 64 + 64).every((x) => x === 100 + i)).toBe(true);
    expect(got.subarray(32 * 64).every((x) => x === 7)).toBe(true);
    await vol.close();
  });

  it('a read of a block being written returns the old block or the new one, whole', async () => {
    const { ns, vol } = await newVolume();
    await vol.write(0, new Uint8Array(4 * BS).fill(1));
    ns.hold = true;
    const w = vol.write(0, new Uint8Array(4 * BS).fill(2));
    const early = vol.read(0, 4 * BS); // asked after the write: sees it whole
    const other = await vol.read(10 * BS, BS); // other blocks: not held up
    expect(other.every((x) => x === 0)).toBe(true);
    await settle();
    ns.hold = false;
    ns.release();
    await w;
    expect((await early).every((x) => x === 2)).toBe(true);
    await vol.close();
  });

  it('flush is a group commit: sixteen writers flushing at once share a few syncs', async () => {
    const { ns, vol } = await newVolume();
    await vol.flush();
    const d0 = ns.dataFlushes;
    const m0 = ns.mapFlushes;
    await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        await vol.write(i * BS, new Uint8Array(BS).fill(i + 1));
        await vol.flush();
      }),
    );
    // one flush may already run when the others arrive: they share the next one
    expect(ns.dataFlushes - d0).toBeLessThanOrEqual(2);
    expect(ns.mapFlushes - m0).toBeLessThanOrEqual(2);
    for (let i = 0; i < 16; i++) expect((await vol.read(i * BS, BS)).every((x) => x === i + 1)).toBe(true);
    await vol.close();
  });

  it('a flush waits for a write started before it, and writes go on while it syncs', async () => {
    const { ns, vol } = await newVolume();
    ns.hold = true;
    const w = vol.write(3 * BS, new Uint8Array(BS).fill(3));
    await settle();
    let flushed = false;
    const f = vol.flush().then(() => (flushed = true));
    await settle();
    expect(flushed).toBe(false);
    ns.hold = false;
    ns.release();
    await w;
    await f;
    // durable: a fresh open of a copy of the stores sees it
    const copy = await Volume.open(ns.inner, { readOnly: true });
    expect((await copy.read(3 * BS, BS)).every((x) => x === 3)).toBe(true);
    await copy.close();
    await vol.close();
  });
});

describe('close among writes and flushes', () => {
  it('a write queued behind close() fails with closed; a flush waiting for a write settles', async () => {
    const { ns, vol } = await newVolume();
    ns.hold = true;
    const w = vol.write(0, new Uint8Array(BS).fill(1));
    await settle();
    const f = vol.flush();
    const c = vol.close();
    const late = vol.write(0, new Uint8Array(BS).fill(2)).then(
      () => 'written',
      (e: { code?: string }) => e.code,
    );
    ns.hold = false;
    ns.release();
    await w;
    await f;
    await c;
    expect(await late).toBe('closed');
    const again = await Volume.open(ns.inner, { readOnly: true });
    expect((await again.read(0, BS)).every((x) => x === 1)).toBe(true);
    await again.close();
  });
});

describe('a read queued behind close()', () => {
  it('fails with closed rather than reading layers close() released', async () => {
    const { ns, vol } = await newVolume();
    await vol.write(0, new Uint8Array(BS).fill(4));
    await vol.snapshot('s');
    const snap = vol.openSnapshot('s');
    ns.hold = true;
    const w = vol.write(0, new Uint8Array(BS).fill(5));
    await settle();
    const c = vol.close();
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'read',
        (e: { code?: string }) => e.code,
      );
    const late = code(vol.read(0, BS));
    const lateSnap = code(snap.read(0, BS));
    ns.hold = false;
    ns.release();
    await w;
    await c;
    expect(await late).toBe('closed');
    expect(await lateSnap).toBe('closed');
  });
});
