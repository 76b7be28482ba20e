import { describe, expect, it } from 'vitest';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { SegmentSums } from '../../../src/resync/segment-sums.js';
import { Volume } from '../../../src/volume/volume.js';
import { hashSegments128, loadKernels } from '../../../src/wasm/index.js';
import { randomBytes } from './helpers.js';
import { VolumeSide } from '../../../src/resync/side.js';

/** Segment checksums: what a write clears, what refresh computes, the idle scheduler, sizes. */
const BS = 4096;
const SEG = 16 * 1024;
const SEGS = 20;
const SIZE = SEG * SEGS - BS; // the last segment is short

async function setup(): Promise<{ ns: MemoryNamespace; v: Volume; content: Uint8Array }> {
  await loadKernels();
  const ns = new MemoryNamespace();
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  const content = randomBytes(SIZE, 3);
  await v.write(0, content);
  return { ns, v, content };
}

describe('segment checksums', () => {
  it('refresh hashes every invalid segment in batches, equal to a plain hash of the content', async () => {
    const { v, content } = await setup();
    const s = await SegmentSums.open(v, { segmentSize: SEG, batchBytes: 3 * SEG });
    expect(s.validCount).toBe(0);
    const seen: number[] = [];
    const r = await s.refresh({ onProgress: (d) => seen.push(d) });
    expect(r).toMatchObject({ segments: SEGS, bytesHashed: SIZE, invalid: 0 });
    expect(seen.at(-1)).toBe(SEGS);
    expect(Buffer.compare(Buffer.from(s.hashes), Buffer.from(hashSegments128(content, SEG)))).toBe(0);
    await s.close();
    await v.close();
  });

  it('a write clears exactly the segments it touches (a write across a boundary clears both)', async () => {
    const { v } = await setup();
    const s = await SegmentSums.open(v, { segmentSize: SEG });
    await s.refresh();
    await v.write(SEG * 3 - 10, new Uint8Array(20));
    await v.writeZeroes(SEG * 10, BS);
    await v.write(SIZE - 1, new Uint8Array(1));
    const invalid = [...s.valid].flatMap((x, i) => (x ? [] : [i]));
    expect(invalid).toEqual([2, 3, 10, SEGS - 1]);
    // refresh after hashes only those
    expect((await s.refresh()).segments).toBe(4);
    await s.close();
    await v.close();
  });

  it('a refresh cancelled part way keeps what it finished', async () => {
    const { v } = await setup();
    const s = await SegmentSums.open(v, { segmentSize: SEG, batchBytes: 2 * SEG });
    const ac = new AbortController();
    await s.refresh({ signal: ac.signal, onProgress: (d) => d >= 6 && ac.abort() });
    expect(s.validCount).toBe(6);
    await s.close();
    await v.close();
  });

  it('the idle scheduler brings the checksums up to date after writes stop', async () => {
    const { v } = await setup();
    const s = await SegmentSums.open(v, { segmentSize: SEG, idleMs: 5 });
    await v.write(0, new Uint8Array(10));
    // wait for the background refresh (a condition, not a time: the bound only stops a hang)
    for (let i = 0; i < 2000 && s.validCount < SEGS; i++) await new Promise((r) => setTimeout(r, 5));
    expect(s.validCount).toBe(SEGS);
    expect(s.backgroundError).toBeNull();
    await s.close();
    await v.close();
  });

  it('checksums a resync side computed are adopted after a flush, except for segments written after they were read', async () => {
    const { v, content } = await setup();
    const s = await SegmentSums.open(v, { segmentSize: SEG });
    const side = new VolumeSide(v, s);
    // a write lands right after the side read segment 1 (before its checksum is offered)
    const readInto = v.readInto.bind(v);
    let raced = false;
    v.readInto = async (offset: number, target: Uint8Array) => {
      await readInto(offset, target);
      if (!raced && offset <= SEG && offset + target.length > SEG) {
        raced = true;
        await v.write(SEG + 100, new Uint8Array([1, 2, 3]));
      }
    };
    const hashes = await side.hash([0, 1, 2]);
    expect(raced).toBe(true);
    expect(s.validCount).toBe(0); // nothing before the flush
    await side.flush();
    expect([...s.valid.subarray(0, 3)]).toEqual([1, 0, 1]);
    expect(Buffer.compare(Buffer.from(s.hashes.subarray(0, 16)), Buffer.from(hashSegments128(content.subarray(0, SEG), SEG)))).toBe(0);
    expect(Buffer.compare(Buffer.from(hashes.subarray(32, 48)), Buffer.from(s.hashes.subarray(32, 48)))).toBe(0);
    await s.close();
    await v.close();
  });

  it('a failure to write the checksums fails that flush (the write is not recorded ahead of them), then they are not used', async () => {
    await loadKernels();
    const inner = new MemoryNamespace();
    let failSums = false;
    const ns = new Proxy(inner, {
      get(t, k) {
        if (k !== 'open') return Reflect.get(t, k, t) as unknown;
        return async (name: string, o?: object) => {
          const st = await t.open(name, o);
          if (!name.startsWith('resync-sums')) return st;
          const write = st.write.bind(st);
          st.write = (off: number, d: Uint8Array) => (failSums ? Promise.reject(new Error('disk full')) : write(off, d));
          return st;
        };
      },
    });
    const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
    const s = await SegmentSums.open(v, { segmentSize: SEG });
    await s.refresh();
    expect(s.usable).toBe(true);
    failSums = true;
    await v.write(0, new Uint8Array(10).fill(1));
    await expect(v.flush()).rejects.toThrow(/disk full/);
    expect(s.usable).toBe(false);
    const side = new VolumeSide(v, s);
    expect([...(await side.known(0, SEGS)).valid].every((x) => x === 0)).toBe(true);
    // the volume goes on without them
    await v.flush();
    await s.close();
    // a volume whose checksums cannot be written at all: open refuses, the volume still works
    await expect(SegmentSums.open(v, { segmentSize: SEG })).rejects.toThrow(/disk full/);
    await v.write(0, new Uint8Array(10).fill(2));
    await v.flush();
    await v.close();
  });

  it('a read-only volume lends its trusted checksums and persists nothing', async () => {
    const { ns, v } = await setup();
    const s = await SegmentSums.open(v, { segmentSize: SEG });
    await s.refresh();
    await s.close();
    await v.close();
    const ro = await Volume.open(ns, { readOnly: true });
    const r = await SegmentSums.open(ro, { segmentSize: SEG });
    expect(r.validCount).toBe(SEGS);
    await r.close();
    await ro.close();
  });

  it('refuses a segment size that is not a power of two, below the block size, or too many segments', async () => {
    const { v } = await setup();
    await expect(SegmentSums.open(v, { segmentSize: 3 * BS })).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(SegmentSums.open(v, { segmentSize: 128 * 1024 * 1024 })).rejects.toMatchObject({ code: 'invalid-argument' });
    const big = await Volume.create(new MemoryNamespace(), { size: 2 ** 40, blockSize: 64 * 1024 });
    await expect(SegmentSums.open(big, { segmentSize: 64 * 1024 })).rejects.toMatchObject({ code: 'invalid-argument' });
    await big.close();
    const bigBlocks = await Volume.create(new MemoryNamespace(), { size: 4 * 1024 * 1024, blockSize: 1024 * 1024 });
    await expect(SegmentSums.open(bigBlocks, { segmentSize: 64 * 1024 })).rejects.toMatchObject({ code: 'invalid-argument' });
    await bigBlocks.close();
    await v.close();
  });
});
