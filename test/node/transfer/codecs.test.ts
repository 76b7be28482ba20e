import { describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { deflateChunk, inflateChunk } from '../../../src/transfer/chunk-codec.js';
import { hashBytes, hashChunks } from '../../../src/transfer/chunk-hash.js';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import type { ObjectRange } from '../../../src/transfer/object-store.js';
import { decodePackIndex, encodePackIndex, type PackEntry } from '../../../src/transfer/pack-index.js';
import { PackWriter } from '../../../src/transfer/pack-writer.js';
import { publish } from '../../../src/transfer/publish.js';
import { openPublishedVersion } from '../../../src/transfer/published-version.js';
import { decodeSegment, encodeSegment } from '../../../src/transfer/segment.js';
import { decodeVersionManifest, encodeVersionManifest, type VersionManifest } from '../../../src/transfer/version-manifest.js';
import { expectCode, fillBlock, KiB, makeVolume, MiB, sameBytes } from './fixtures.js';

const id = (n: number) => {
  const b = new Uint8Array(32);
  b[0] = n;
  b[31] = 255 - n;
  return b;
};

describe('codecs', () => {
  it('hashChunks equals hashBytes of each piece, the short tail included', async () => {
    const data = new Uint8Array(10_000);
    fillBlock(data, 3);
    const all = await hashChunks(data, 4096);
    expect(all.length).toBe(3 * 32);
    for (let i = 0; i < 3; i++) expect(all.subarray(i * 32, i * 32 + 32)).toEqual(await hashBytes(data.subarray(i * 4096, Math.min(data.length, (i + 1) * 4096))));
    // the BLAKE3 of nothing (official test vector)
    expect(Buffer.from(await hashBytes(new Uint8Array(0))).toString('hex')).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  });

  it('pack index round trip, sorted by id, with every bound checked', async () => {
    const entries: PackEntry[] = [
      { id: id(9), offset: 0, stored: 100, raw: 4096, codec: 1 },
      { id: id(2), offset: 100, stored: 4096, raw: 4096, codec: 0 },
    ];
    const bytes = await encodePackIndex(entries);
    const back = await decodePackIndex(bytes, 4196, 'idx');
    expect(back.map((e) => e.id[0])).toEqual([2, 9]);
    expect(back[1]).toMatchObject({ offset: 0, stored: 100, raw: 4096, codec: 1 });
    await expectCode(decodePackIndex(bytes, 4195, 'idx'), 'corrupt'); // past the pack's end
    await expectCode(decodePackIndex(bytes.subarray(0, bytes.length - 1), 4196, 'idx'), 'corrupt');
    const flipped = bytes.slice();
    flipped[20] ^= 1;
    await expectCode(decodePackIndex(flipped, 4196, 'idx'), 'checksum-mismatch');
    const huge = bytes.slice();
    new DataView(huge.buffer).setUint32(8, 0xffffffff, true); // count: refused before any allocation
    await expectCode(decodePackIndex(huge, 4196, 'idx'), 'corrupt');
  });

  it('segment round trip, held to what the manifest says', async () => {
    const s = { firstBlock: 65536, blocks: 10, packs: ['ab'.repeat(32), 'cd'.repeat(32)], entries: [
      { block: 1, pack: 0, offset: 0, stored: 4096, codec: 0, id: id(1) },
      { block: 7, pack: 1, offset: 50, stored: 30, codec: 1, id: id(2) },
    ] };
    const bytes = await encodeSegment(s);
    const expectOk = { firstBlock: 65536, blocks: 10, entries: 2, blockSize: 4096 };
    const back = await decodeSegment(bytes, expectOk, 'seg');
    expect(back.packs).toEqual(s.packs);
    expect(back.entries.map((e) => [e.block, e.pack, e.offset, e.stored, e.codec])).toEqual([[1, 0, 0, 4096, 0], [7, 1, 50, 30, 1]]);
    await expectCode(decodeSegment(bytes, { ...expectOk, entries: 3 }, 'seg'), 'corrupt');
    await expectCode(decodeSegment(bytes, { ...expectOk, firstBlock: 0 }, 'seg'), 'corrupt');
    await expectCode(decodeSegment(bytes, { ...expectOk, blockSize: 1024 }, 'seg'), 'corrupt'); // raw chunk larger than a block
  });

  it('version manifest round trip', () => {
    const m: VersionManifest = {
      format: 'stratadisk-version/1', image: 'disk', size: 65536 * 3 + 1, blockSize: 65536, created: '2026-01-01T00:00:00.000Z',
      source: { volume: 'vol', snapshot: 's1', layer: 'ab' }, segments: [{ id: 'e'.repeat(64), firstBlock: 0, blocks: 4, entries: 2 }], chunks: 2, storedBytes: 1000,
    };
    expect(decodeVersionManifest(encodeVersionManifest(m), 'm')).toEqual(m);
    expect(() => decodeVersionManifest(new TextEncoder().encode('{"format":1}'), 'm')).toThrow(StrataError);
    expect(() => decodeVersionManifest(new Uint8Array([0xff, 0xfe]), 'm')).toThrow(/not UTF-8 JSON/);
  });

  it('a chunk is kept compressed only when that saves at least 1/8', async () => {
    const w = new PackWriter({ compress: true });
    const text = new Uint8Array(64 * KiB);
    fillBlock(text, 1, true);
    const noise = new Uint8Array(64 * KiB);
    fillBlock(noise, 2);
    await w.add(id(1), text);
    await w.add(id(2), noise);
    const p = w.finish()!;
    expect(p.entries[0]!.codec).toBe(1);
    expect(p.entries[0]!.stored).toBeLessThanOrEqual(64 * KiB * 0.875);
    expect(p.entries[1]).toMatchObject({ codec: 0, stored: 64 * KiB });
    expect(p.bytes.length).toBe(p.entries[0]!.stored + 64 * KiB);
    expect(await inflateChunk(p.bytes.subarray(0, p.entries[0]!.stored), 64 * KiB, 'c')).toEqual(text);
  });

  it('inflation is bounded: a deflate bomb and garbage are refused', async () => {
    const bomb = await deflateChunk(new Uint8Array(8 * MiB));
    expect(bomb.length).toBeLessThan(16 * KiB);
    await expectCode(inflateChunk(bomb, 64 * KiB, 'bomb'), 'corrupt');
    await expectCode(inflateChunk(new Uint8Array([1, 2, 3, 4, 5]), 64 * KiB, 'garbage'), 'corrupt');
    await expectCode(inflateChunk(bomb.subarray(0, bomb.length - 3), 16 * MiB, 'cut'), 'corrupt');
  });

  it('the reader coalesces adjacent chunks of one pack into one range GET', async () => {
    const { vol, model } = await makeVolume(4 * MiB, 64 * KiB, { every: 1 });
    const objects = new MemoryObjectStore();
    const r = await publish(objects, vol, { image: 'disk' });
    expect(r.packsWritten).toBe(1);
    const gets: [string, ObjectRange | undefined][] = [];
    const get = objects.get.bind(objects);
    objects.get = (key: string, range?: ObjectRange, signal?: AbortSignal) => {
      gets.push([key, range]);
      return get(key, range, signal);
    };
    const v = await openPublishedVersion(objects, { image: 'disk', tag: 'latest' });
    expect(sameBytes(await v.read(0, 4 * MiB), model)).toBe(true);
    const packGets = gets.filter(([k]) => k.endsWith('.pack'));
    // 64 blocks, some repeated or zero: the pack is read in one GET
    expect(packGets.length).toBe(1);
    await vol.close();
  });
});
