/**
 * A seeded mutation fuzzer over the objects of a published image: `.idx`, segments, version
 * manifests, packs and tags. Each case damages one object (flipped bits, boundary values in its
 * fields, truncation, extension), either in place or "resealed" (its checksum trailer and its name
 * recomputed and the objects above it rewritten to point at it, as a hostile writer would), then
 * reads the version. Every case must end in a StrataError with a known code, or in bytes that are
 * right: the original bytes for an in-place mutation; for a resealed one, every block reads as
 * zeros where the (verified) table has no entry, and otherwise as bytes whose BLAKE3 is the id the
 * table names. ~300 cases by default, 100,000 with STRATADISK_LONG=1.
 */
import { describe, expect, it } from 'vitest';
import { prng } from '../../../src/bench/prng.js';
import { StrataError } from '../../../src/errors.js';
import { ChunkCatalog } from '../../../src/transfer/chunk-catalog.js';
import { hashBytes } from '../../../src/transfer/chunk-hash.js';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { toHex } from '../../../src/transfer/object-names.js';
import { decodePackIndex, MAX_CHUNK_BYTES, STORED_SLACK } from '../../../src/transfer/pack-index.js';
import { publish } from '../../../src/transfer/publish.js';
import { loadSegment, openPublishedVersion } from '../../../src/transfer/published-version.js';
import { decodeVersionManifest } from '../../../src/transfer/version-manifest.js';
import { fillBlock, KiB, makeVolume } from './fixtures.js';

const LONG = process.env.STRATADISK_LONG === '1';
const CASES = LONG ? 100_000 : 300;
const CODES = new Set(['corrupt', 'checksum-mismatch', 'not-found']);
const BOUNDARY = [0, 1, 2, 0x7f, 0x80, 0xff, 0xfff, 0x1000, 0x10000, 0x100000, 0x100400, 0x7fffffff, 0x80000000, 0xffffffff];

type Kind = 'idx' | 'segment' | 'manifest' | 'pack' | 'tag';

function mutate(src: Uint8Array, rnd: () => number): Uint8Array {
  const pick = Math.floor(rnd() * 6);
  let b = src.slice();
  const at = () => Math.floor(rnd() * Math.max(1, b.length));
  if (pick === 0) {
    for (let i = 0, n = 1 + Math.floor(rnd() * 4); i < n && b.length > 0; i++) b[at()] ^= 1 << Math.floor(rnd() * 8);
  } else if (pick === 1 && b.length >= 4) {
    // a u32 field (aligned to the record layouts' 4-byte fields, or anywhere)
    const o = Math.min(b.length - 4, rnd() < 0.5 ? at() & ~3 : at());
    new DataView(b.buffer).setUint32(o, BOUNDARY[Math.floor(rnd() * BOUNDARY.length)]!, true);
  } else if (pick === 2) {
    b = b.slice(0, Math.floor(rnd() * b.length));
  } else if (pick === 3) {
    const extra = new Uint8Array(1 + Math.floor(rnd() * 100));
    for (let i = 0; i < extra.length; i++) extra[i] = Math.floor(rnd() * 256);
    const out = new Uint8Array(b.length + extra.length);
    out.set(b);
    out.set(extra, b.length);
    b = out;
  } else if (pick === 4 && b.length > 0) {
    b[at()] = BOUNDARY[Math.floor(rnd() * BOUNDARY.length)]! & 0xff;
  } else {
    // a digit in JSON or a byte anywhere set to a digit / a sign
    const chars = '0123456789-e.,"{}[]';
    b[at()] = chars.charCodeAt(Math.floor(rnd() * chars.length));
  }
  return b;
}

/** Recompute the trailing BLAKE3 of a binary object (idx, segment). */
async function reseal(b: Uint8Array): Promise<Uint8Array> {
  if (b.length < 32) return b;
  const out = b.slice();
  out.set(await hashBytes(out.subarray(0, out.length - 32)), out.length - 32);
  return out;
}

async function setup() {
  const bs = 4 * KiB;
  const size = 256 * KiB + 1000;
  const { vol, model } = await makeVolume(size, bs, { every: 2 });
  // some compressible blocks so that deflate chunks are in the packs
  for (let b = 1; b < 64; b += 8) {
    const d = new Uint8Array(bs);
    fillBlock(d, b, true);
    await vol.write(b * bs, d);
    model.set(d, b * bs);
  }
  const objects = new MemoryObjectStore();
  const r = await publish(objects, vol, { image: 'disk', compress: true, packBytes: 16 * KiB });
  await vol.close();
  return { objects, model, contentId: r.contentId, bs };
}

/** The oracle for a version reached by content ID through hostile but well-sealed objects. */
async function checkAgainstTable(objects: MemoryObjectStore, id: string, out: Uint8Array): Promise<void> {
  const v = await openPublishedVersion(objects, { contentId: id });
  const bs = v.blockSize;
  for (let s = 0; s < v.manifest.segments.length; s++) {
    const seg = await loadSegment(objects, v.manifest, s);
    const ids = new Map(seg.entries.map((e) => [seg.firstBlock + e.block, toHex(e.id)]));
    for (let b = seg.firstBlock; b < seg.firstBlock + seg.blocks; b++) {
      const blk = out.subarray(b * bs, Math.min(out.length, (b + 1) * bs));
      const want = ids.get(b);
      if (want === undefined) expect(blk.every((x) => x === 0)).toBe(true);
      else expect(toHex(await hashBytes(blk))).toBe(want);
    }
  }
}

describe('fuzz: damaged and hostile published objects', () => {
  it(`${CASES} cases end in a coded error or right bytes`, async () => {
    const base = await setup();
    const keys = [...base.objects.objects.keys()];
    const byKind: Record<Kind, string[]> = {
      idx: keys.filter((k) => k.endsWith('.idx')),
      segment: keys.filter((k) => k.startsWith('segments/')),
      manifest: keys.filter((k) => k.startsWith('versions/')),
      pack: keys.filter((k) => k.endsWith('.pack')),
      tag: keys.filter((k) => k.includes('/tags/')),
    };
    const kinds = Object.keys(byKind) as Kind[];
    const outcome: Record<string, number> = {};
    const rnd = prng(0x5eed);
    for (let c = 0; c < CASES; c++) {
      const kind = kinds[c % kinds.length]!;
      const key = byKind[kind][Math.floor(rnd() * byKind[kind].length)]!;
      const objects = new MemoryObjectStore();
      for (const [k, o] of base.objects.objects) objects.objects.set(k, o);
      const orig = base.objects.objects.get(key)!.data;
      const resealed = (kind === 'segment' || kind === 'manifest' || kind === 'idx') && rnd() < 0.6;
      let bytes = mutate(orig, rnd);
      let ref: { contentId: string } | { image: string; tag: string } = { image: 'disk', tag: 'latest' };
      const label = `case ${c}: ${kind}${resealed ? ' (resealed)' : ''} ${key}`;
      try {
        if (kind === 'idx') {
          // the catalogue reads .idx; a damaged one is set aside, an accepted one obeys every bound
          if (resealed) bytes = await reseal(bytes);
          const packSize = base.objects.objects.get(key.replace(/\.idx$/, '.pack'))!.data.length;
          objects.objects.set(key, { data: bytes, modified: 0 });
          const cat = await ChunkCatalog.load(objects);
          const entries = await decodePackIndex(bytes, packSize, key).catch((e: unknown) => {
            expect(e instanceof StrataError && CODES.has(e.code), `${label}: ${String(e)}`).toBe(true);
            return null;
          });
          if (entries === null) expect(cat.damaged.length).toBe(1);
          for (const e of entries ?? []) {
            expect(e.raw > 0 && e.raw <= MAX_CHUNK_BYTES && e.stored <= e.raw + STORED_SLACK && e.offset + e.stored <= packSize).toBe(true);
          }
          outcome[`idx ${entries === null ? 'refused' : 'accepted'}`] = (outcome[`idx ${entries === null ? 'refused' : 'accepted'}`] ?? 0) + 1;
          continue;
        }
        if (resealed && kind === 'segment') {
          bytes = await reseal(bytes);
          const segId = toHex(await hashBytes(bytes));
          objects.objects.set(`segments/${segId}`, { data: bytes, modified: 0 });
          const m = JSON.parse(new TextDecoder().decode(base.objects.objects.get(`versions/${base.contentId}`)!.data));
          m.segments[0].id = segId;
          const mb = new TextEncoder().encode(JSON.stringify(m));
          const vid = toHex(await hashBytes(mb));
          objects.objects.set(`versions/${vid}`, { data: mb, modified: 0 });
          ref = { contentId: vid };
        } else if (resealed && kind === 'manifest') {
          const vid = toHex(await hashBytes(bytes));
          objects.objects.set(`versions/${vid}`, { data: bytes, modified: 0 });
          ref = { contentId: vid };
        } else {
          objects.objects.set(key, { data: bytes, modified: 0 });
        }
        const v = await openPublishedVersion(objects, ref);
        const out = await v.read(0, v.size);
        const o = Math.floor(rnd() * v.size);
        const part = await v.read(o, Math.min(v.size - o, Math.floor(rnd() * 3 * base.bs)));
        expect(Buffer.from(part).equals(Buffer.from(out.subarray(o, o + part.length))), label).toBe(true);
        if ('contentId' in ref) await checkAgainstTable(objects, ref.contentId, out);
        else expect(Buffer.from(out).equals(Buffer.from(base.model)), label).toBe(true);
        outcome[`${kind} read`] = (outcome[`${kind} read`] ?? 0) + 1;
      } catch (e) {
        if (!(e instanceof StrataError) || !CODES.has(e.code)) throw new Error(`${label}: ${e instanceof Error ? e.stack : String(e)}`);
        outcome[`${kind} ${e.code}`] = (outcome[`${kind} ${e.code}`] ?? 0) + 1;
      }
    }
    if (LONG) console.log(JSON.stringify(outcome));
    // the fuzzer reaches both outcomes: refusals and correct reads
    expect(Object.keys(outcome).some((k) => k.endsWith('read'))).toBe(true);
    expect(Object.keys(outcome).some((k) => k.endsWith('corrupt'))).toBe(true);
    expect(Object.keys(outcome).some((k) => k.endsWith('checksum-mismatch'))).toBe(true);
  }, LONG ? 3_600_000 : 120_000);

  it('manifest fields at their bounds are refused before anything is sized by them', () => {
    const m = {
      format: 'stratadisk-version/1', image: 'disk', size: 2 ** 52, blockSize: 4096, created: '2026-01-01T00:00:00Z',
      source: { volume: 'v', snapshot: null, layer: null }, segments: [], chunks: 0, storedBytes: 0,
    };
    const enc = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));
    for (const bad of [
      { ...m }, // 2^52 bytes at 4 KiB would need 16M segments: the list does not match
      { ...m, size: 2 ** 60 },
      { ...m, size: -1 },
      { ...m, size: 0, blockSize: 3000 },
      { ...m, size: 0, blockSize: 2 ** 21 },
      { ...m, size: 4096, segments: [{ id: 'a'.repeat(64), firstBlock: 0, blocks: 1, entries: 2 }], chunks: 2 },
      { ...m, size: 4096, segments: [{ id: 'a'.repeat(64), firstBlock: 0, blocks: 1, entries: 1 }], chunks: 5 },
      { ...m, size: 4096, segments: [{ id: 'A'.repeat(64), firstBlock: 0, blocks: 1, entries: 1 }], chunks: 1 },
    ]) {
      expect(() => decodeVersionManifest(enc(bad), 'test'), JSON.stringify(bad).slice(0, 120)).toThrow(StrataError);
    }
    expect(() => decodeVersionManifest(new Uint8Array(1024 * 1024 + 1), 'test')).toThrow(/at most/);
  });
});
