import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { publish } from '../../../src/transfer/publish.js';
import { openPublishedVersion } from '../../../src/transfer/published-version.js';
import { changeBlocks, expectCode, KiB, makeVolume, MiB, sameBytes } from './fixtures.js';

describe('publish and read back', () => {
  for (const [bs, compress] of [[64 * KiB, false], [4 * KiB, true], [64 * KiB, true]] as const) {
    it(`equals the volume (block ${bs / KiB}K${compress ? ', compressed' : ''})`, async () => {
      const size = 3 * MiB + 5000;
      const { vol, model } = await makeVolume(size, bs, { compressible: compress });
      const objects = new MemoryObjectStore();
      const r = await publish(objects, vol, { image: 'disk', compress, packBytes: 512 * KiB });
      expect(r.packsWritten).toBeGreaterThan(compress ? 0 : 1);
      if (compress) expect(r.compressRatio).toBeLessThan(0.875);
      const v = await openPublishedVersion(objects, { image: 'disk', tag: 'latest' });
      expect(v.contentId).toBe(r.contentId);
      expect(v.size).toBe(size);
      expect(sameBytes(await v.read(0, size), model)).toBe(true);
      // unaligned pieces
      for (const [o, n] of [[1, 10], [bs - 3, 7], [size - 100, 100], [bs * 5 + 17, bs * 3]]) {
        expect(sameBytes(await v.read(o, n), model.subarray(o, o + n))).toBe(true);
      }
      await expectCode(v.read(size - 1, 2), 'out-of-range');
      await expectCode(v.read(0, 1 << 30), ['out-of-range', 'invalid-argument']);
      await vol.close();
    });
  }

  it('publishes a snapshot, not the live view, and the same content gets the same content ID', async () => {
    const size = 2 * MiB;
    const { vol, model } = await makeVolume(size, 64 * KiB);
    await vol.snapshot('s1');
    await changeBlocks(vol, model.slice(), 64 * KiB, 5, 9);
    const objects = new MemoryObjectStore();
    const created = new Date('2026-01-01T00:00:00Z');
    const r = await publish(objects, vol.openSnapshot('s1'), { image: 'disk', tag: 's1', created });
    const v = await openPublishedVersion(objects, { contentId: r.contentId });
    expect(sameBytes(await v.read(0, size), model)).toBe(true);
    const again = await publish(objects, vol.openSnapshot('s1'), { image: 'disk', tag: 's1', created });
    expect(again.contentId).toBe(r.contentId);
    expect(again.chunksUploaded).toBe(0);
    expect(again.packsWritten).toBe(0);
    await vol.close();
  });

  it('a second publish with 1% changed blocks uploads at most 1.1x the changed bytes plus the index', async () => {
    const bs = 64 * KiB;
    const size = 64 * MiB;
    const { vol, model } = await makeVolume(size, bs, { every: 2 });
    const objects = new MemoryObjectStore();
    const first = await publish(objects, vol, { image: 'disk' });
    const changed = await changeBlocks(vol, model, bs, Math.ceil(size / bs / 100), 3);
    const second = await publish(objects, vol, { image: 'disk' });
    expect(second.chunksUploaded).toBeLessThanOrEqual(Math.ceil(changed / bs));
    expect(second.packBytesUploaded).toBeLessThanOrEqual(1.1 * changed);
    expect(second.bytesUploaded).toBeLessThanOrEqual(1.1 * changed + second.indexBytesUploaded);
    expect(second.contentId).not.toBe(first.contentId);
    const v = await openPublishedVersion(objects, { image: 'disk', tag: 'latest' });
    expect(v.contentId).toBe(second.contentId);
    expect(sameBytes(await v.read(0, size), model)).toBe(true);
    await vol.close();
  });

  it('an empty volume publishes as a version of zeros', async () => {
    const { vol } = await makeVolume(1 * MiB, 64 * KiB, { every: 1_000_000 });
    await vol.write(0, new Uint8Array(64 * KiB)); // a zero block written is still not a chunk
    const objects = new MemoryObjectStore();
    const r = await publish(objects, vol, { image: 'empty' });
    expect(r.chunks).toBe(0);
    const v = await openPublishedVersion(objects, { image: 'empty', tag: 'latest' });
    expect(sameBytes(await v.read(0, 1 * MiB), new Uint8Array(1 * MiB))).toBe(true);
    await vol.close();
  });
});

describe('hostile sizes', () => {
  it('a version claiming a huge size is read in bounded pieces, never one huge allocation', async () => {
    const { hashBytes } = await import('../../../src/transfer/chunk-hash.js');
    const { toHex } = await import('../../../src/transfer/object-names.js');
    const { encodeSegment } = await import('../../../src/transfer/segment.js');
    const objects = new MemoryObjectStore();
    // 2^40 bytes at 1 MiB blocks: 16 segments, all empty; well-formed, and reads as zeros
    const segs = [];
    for (let i = 0; i < 16; i++) {
      const b = await encodeSegment({ firstBlock: i * 65536, blocks: 65536, packs: [], entries: [] });
      const id = toHex(await hashBytes(b));
      await objects.put(`segments/${id}`, b);
      segs.push({ id, firstBlock: i * 65536, blocks: 65536, entries: 0 });
    }
    const m = new TextEncoder().encode(JSON.stringify({ format: 'stratadisk-version/1', image: 'big', size: 2 ** 40, blockSize: 1 << 20, created: '2026-01-01T00:00:00Z', source: { volume: 'x', snapshot: null, layer: null }, segments: segs, chunks: 0, storedBytes: 0 }));
    const vid = toHex(await hashBytes(m));
    await objects.put(`versions/${vid}`, m);
    const v = await openPublishedVersion(objects, { contentId: vid });
    await expectCode(v.read(0, v.size), 'invalid-argument');
    expect(sameBytes(await v.read(2 ** 40 - 4096, 4096), new Uint8Array(4096))).toBe(true);
  });
});
