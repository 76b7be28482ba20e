import { describe, expect, it } from 'vitest';
import { prng } from '../../../src/bench/prng.js';
import { KIND_RESYNC_SUMS, MAGIC_RESYNC_SUMS } from '../../../src/format/magic.js';
import { encodeRecord, RECORD_OVERHEAD } from '../../../src/format/record.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { SegmentSums } from '../../../src/resync/segment-sums.js';
import { SUMS_SLOTS, decodeSums, encodeSums, readSums } from '../../../src/resync/sums-format.js';
import { Volume } from '../../../src/volume/volume.js';
import { loadKernels } from '../../../src/wasm/index.js';

/**
 * A damaged or hostile checksum file is never trusted: truncated, flipped or re-checksummed with
 * hostile counts, sizes and lengths, it makes every segment invalid (or, from an unknown newer
 * version, also nothing trusted) and never allocates by a field it holds.
 */
const BS = 4096;
const SEG = 8192;
const SEGS = 10;
const SIZE = SEG * SEGS;

async function cleanVolume(): Promise<{ ns: MemoryNamespace; file: Uint8Array; name: string }> {
  await loadKernels();
  const ns = new MemoryNamespace();
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  await v.write(0, new Uint8Array(SIZE).fill(7));
  const s = await SegmentSums.open(v, { segmentSize: SEG });
  await s.refresh();
  await s.close();
  await v.close();
  // the newest record (the close) is in one slot; drop the other so the damage cannot be routed around
  const slots = await Promise.all(SUMS_SLOTS.map(async (n) => ({ n, r: await readSums(ns, SIZE, SEG) })));
  const best = slots[0]!.r.best!;
  const name = SUMS_SLOTS[best.generation % 2]!;
  const other = SUMS_SLOTS[(best.generation + 1) % 2]!;
  if (await ns.exists(other)) await ns.delete(other);
  const st = await ns.open(name);
  const file = await st.read(0, st.size);
  await st.close();
  return { ns, file, name };
}

async function put(ns: MemoryNamespace, name: string, bytes: Uint8Array): Promise<void> {
  if (await ns.exists(name)) await ns.delete(name);
  const st = await ns.open(name, { create: true });
  await st.write(0, bytes);
  await st.flush();
  await st.close();
}

async function trusted(ns: MemoryNamespace): Promise<number> {
  const v = await Volume.open(ns, { readOnly: true });
  try {
    const s = await SegmentSums.open(v, { segmentSize: SEG });
    return s.validCount;
  } finally {
    await v.close();
  }
}

function payloadRecord(fields: { size?: number; seg?: number; count?: number; open?: number; bl?: number; extra?: number; binding?: string }, seq = 99): Uint8Array {
  const binding = new TextEncoder().encode(fields.binding ?? '{"uuid":"x","chain":[],"contentId":"y"}');
  const count = fields.count ?? SEGS;
  const flags = Math.ceil(Math.min(count, 1000) / 8);
  const p = new Uint8Array(20 + binding.length + flags + 16 * Math.min(count, 1000) + (fields.extra ?? 0));
  const v = new DataView(p.buffer);
  v.setFloat64(0, fields.size ?? SIZE, true);
  v.setUint32(8, fields.seg ?? SEG, true);
  v.setUint32(12, count >>> 0, true);
  p[16] = fields.open ?? 0;
  v.setUint16(18, fields.bl ?? binding.length, true);
  p.set(binding, 20);
  p.fill(255, 20 + binding.length);
  return encodeRecord({ magic: MAGIC_RESYNC_SUMS, kind: KIND_RESYNC_SUMS, version: 1, seq, length: p.length }, p);
}

describe('a damaged checksum file is never trusted', () => {
  it('the clean file is trusted (control)', async () => {
    const { ns } = await cleanVolume();
    expect(await trusted(ns)).toBe(SEGS);
  });

  it('every truncation', async () => {
    const { ns, file, name } = await cleanVolume();
    for (let n = 0; n < file.length; n += n < 64 ? 1 : 13) {
      await put(ns, name, file.subarray(0, n));
      expect(await trusted(ns), `cut at ${n}`).toBe(0);
    }
  });

  it('flipped bytes (seeded)', async () => {
    const { ns, file, name } = await cleanVolume();
    const r = prng(11);
    for (let k = 0; k < 200; k++) {
      const bad = file.slice();
      const at = Math.floor(r() * bad.length);
      bad[at] = bad[at]! ^ (1 + Math.floor(r() * 255));
      await put(ns, name, bad);
      expect(await trusted(ns), `flip at ${at}`).toBe(0);
    }
  });

  it('hostile fields under a valid record checksum', async () => {
    await loadKernels();
    const cases: [string, Parameters<typeof payloadRecord>[0]][] = [
      ['huge count', { count: 0xffffffff }],
      ['count off by one', { count: SEGS + 1 }],
      ['other volume size', { size: SIZE * 2 }],
      ['NaN size', { size: Number.NaN }],
      ['other segment size', { seg: SEG * 2 }],
      ['binding longer than the record', { bl: 60000 }],
      ['binding not JSON', { binding: '{"uuid":' }],
      ['binding of the wrong shape', { binding: '{"uuid":1,"chain":"x","contentId":null}' }],
      ['trailing bytes', { extra: 5 }],
      ['open byte out of range', { open: 7 }],
    ];
    for (const [what, f] of cases) {
      const rec = payloadRecord(f);
      expect(decodeSums(rec, 'resync-sums.1', SIZE, SEG).state, what).toBe('invalid');
    }
    // a record header claiming a payload far beyond any this volume can have is refused from its header
    const big = payloadRecord({});
    new DataView(big.buffer).setUint32(16, 0x7fffffff, true);
    expect(decodeSums(big, 'resync-sums.1', SIZE, SEG).state).toBe('invalid');
  });

  it('a huge slot file is read only up to the largest record the volume can have', async () => {
    const { ns, file, name } = await cleanVolume();
    const huge = new Uint8Array(64 * 1024 * 1024);
    huge.set(file);
    await put(ns, name, huge);
    // the record at its start is whole and valid: reading stopped at the bound, and it is trusted
    expect(await trusted(ns)).toBe(SEGS);
    expect(RECORD_OVERHEAD + file.length).toBeLessThan(huge.length);
  });

  it('a newer version is not read and an older record is not used instead', async () => {
    const { ns, file, name } = await cleanVolume();
    const t = decodeSums(file, name, SIZE, SEG);
    expect(t.state).toBe('valid');
    if (t.state !== 'valid') return;
    const newer = encodeSums(t.table, t.generation + 1);
    new DataView(newer.buffer).setUint16(6, 9, true);
    // re-checksum: a complete record of version 9
    const p = newer.subarray(24, newer.length - 8);
    const rec = encodeRecord({ magic: MAGIC_RESYNC_SUMS, kind: KIND_RESYNC_SUMS, version: 9, seq: t.generation + 1, length: p.length }, p);
    await put(ns, SUMS_SLOTS[(t.generation + 1) % 2]!, rec);
    const r = await readSums(ns, SIZE, SEG);
    expect(r.best).toBeNull();
    expect(r.problems.map((e) => e.code)).toContain('unsupported');
    expect(await trusted(ns)).toBe(0);
  });
});
