import { StrataError } from '../errors.js';
import { FORMATS, KIND_RESYNC_SUMS, MAGIC_RESYNC_SUMS, newerVersion } from '../format/magic.js';
import { RECORD_HEADER, RECORD_OVERHEAD, checksumOk, decodeHead, encodeRecord } from '../format/record.js';
import type { StoreNamespace } from '../store/store.js';

/**
 * How a volume's segment checksums sit on its store: two record slots (A/B, generation g in
 * `SUMS_SLOTS[g % 2]`), each one checksummed record (src/format/record.ts, magic "SDRS") whose
 * binary payload is
 *
 *   offset  size       field
 *   0       8          volume size (f64, a whole number)
 *   8       4          segment size (u32, a power of two)
 *   12      4          segment count (u32) = ceil(volume size / segment size)
 *   16      1          open (1: a writer with the observer had the volume open; see segment-sums.ts)
 *   17      1          reserved, zero
 *   18      2          binding length B (u16, at most MAX_BINDING)
 *   20      B          binding: UTF-8 JSON {uuid, chain, contentId} of the live view it describes
 *   20+B    ceil(n/8)  valid flags, bit i of byte i>>3 (LSB first) = segment i
 *   ...     16 n       XXH3-128 of each segment (canonical bytes; zeros where invalid)
 *
 * Reading is untrusted: the expected size and count come from the volume (the caller), so the
 * largest payload is known before anything is allocated, and a record that disagrees with the
 * volume in any field is not used (`invalid`: every segment is then treated as unknown).
 */
export const SUMS_SLOTS = ['resync-sums.0', 'resync-sums.1'] as const;
const FIXED = 20;
export const MAX_BINDING = 16 * 1024;
/** Largest segment count a sums file may describe (4 Mi: 4 TiB at 1 MiB segments; ~21 bytes of memory each). */
export const MAX_SEGMENTS = 2 ** 22;

/** What the checksums describe: the live view of one volume, as of a layer chain and content. */
export interface SumsBinding {
  uuid: string;
  chain: string[];
  contentId: string;
}

export interface SumsTable {
  volumeSize: number;
  segmentSize: number;
  count: number;
  open: boolean;
  binding: SumsBinding;
  /** one byte per segment, 1 = valid */
  valid: Uint8Array;
  /** 16 bytes per segment */
  hashes: Uint8Array;
}

export function segmentCountOf(volumeSize: number, segmentSize: number): number {
  return Math.ceil(volumeSize / segmentSize);
}

/** Check a segment size against a volume's block size (power of two, >= the block size, <= 1 GiB). */
/** Largest segment: one is read and hashed whole, in a buffer of its size (two, double-buffered). */
export const MAX_SEGMENT_SIZE = 64 * 1024 * 1024;

export function checkSegmentSize(segmentSize: number, blockSize: number): void {
  if (!Number.isSafeInteger(segmentSize) || segmentSize < 4096 || segmentSize > MAX_SEGMENT_SIZE || (segmentSize & (segmentSize - 1)) !== 0) {
    throw new StrataError('invalid-argument', `The segment size must be a power of two from 4 KiB to 64 MiB, not ${segmentSize}.`);
  }
  if (segmentSize < blockSize) {
    throw new StrataError('invalid-argument', `The segment size (${segmentSize}) must be at least the volume's block size (${blockSize}), so that no block straddles two segments.`);
  }
}

export function payloadSize(count: number, bindingBytes: number): number {
  return FIXED + bindingBytes + Math.ceil(count / 8) + 16 * count;
}

export function encodeSums(t: SumsTable, generation: number): Uint8Array {
  const binding = new TextEncoder().encode(JSON.stringify(t.binding));
  if (binding.length > MAX_BINDING) throw new StrataError('invalid-argument', 'The volume has too many layers to record in its segment checksums.');
  const n = t.count;
  const payload = new Uint8Array(payloadSize(n, binding.length));
  const v = new DataView(payload.buffer);
  v.setFloat64(0, t.volumeSize, true);
  v.setUint32(8, t.segmentSize, true);
  v.setUint32(12, n, true);
  payload[16] = t.open ? 1 : 0;
  v.setUint16(18, binding.length, true);
  payload.set(binding, FIXED);
  const flagsAt = FIXED + binding.length;
  for (let i = 0; i < n; i++) if (t.valid[i]) payload[flagsAt + (i >> 3)]! |= 1 << (i & 7);
  const hashesAt = flagsAt + Math.ceil(n / 8);
  for (let i = 0; i < n; i++) if (t.valid[i]) payload.set(t.hashes.subarray(i * 16, i * 16 + 16), hashesAt + i * 16);
  return encodeRecord({ magic: MAGIC_RESYNC_SUMS, kind: KIND_RESYNC_SUMS, version: FORMATS.resyncSums.writes, seq: generation, length: payload.length }, payload);
}

export type SumsRead =
  | { state: 'missing' | 'empty' }
  | { state: 'invalid' | 'unsupported'; error: StrataError; generation?: number }
  | { state: 'valid'; generation: number; table: SumsTable };

/** Decode one slot's bytes, expecting a volume of `volumeSize` at `segmentSize`. */
export function decodeSums(bytes: Uint8Array, name: string, volumeSize: number, segmentSize: number): SumsRead {
  const bad = (why: string): SumsRead => ({ state: 'invalid', error: new StrataError('corrupt', `${name} is damaged or stale (${why}); every segment is treated as unknown and hashed again.`) });
  const count = segmentCountOf(volumeSize, segmentSize);
  const max = payloadSize(count, MAX_BINDING);
  const head = decodeHead(bytes, MAGIC_RESYNC_SUMS, max);
  if (!head || head.kind !== KIND_RESYNC_SUMS) return bad('no segment checksum record header');
  if (!checksumOk(bytes, head.length)) return bad('checksum mismatch or cut short');
  if (!(FORMATS.resyncSums.reads as readonly number[]).includes(head.version)) {
    return { state: 'unsupported', error: newerVersion('resyncSums', name, head.version), generation: head.seq };
  }
  const p = bytes.subarray(RECORD_HEADER, RECORD_HEADER + head.length);
  if (p.length < FIXED) return bad('too short');
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  const size = v.getFloat64(0, true);
  const seg = v.getUint32(8, true);
  const n = v.getUint32(12, true);
  if (size !== volumeSize) return bad(`it describes a volume of ${size} bytes, this one has ${volumeSize}`);
  if (seg !== segmentSize) return bad(`it uses ${seg}-byte segments, not ${segmentSize}`);
  if (n !== count) return bad(`it counts ${n} segments, not ${count}`);
  if (p[16]! > 1 || p[17] !== 0) return bad('reserved bits set');
  const bl = v.getUint16(18, true);
  if (bl > MAX_BINDING || p.length !== payloadSize(n, bl)) return bad('its length does not match its segment count');
  let binding: SumsBinding;
  try {
    binding = checkBinding(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p.subarray(FIXED, FIXED + bl))));
  } catch {
    return bad('its binding is not valid');
  }
  const flagsAt = FIXED + bl;
  const hashesAt = flagsAt + Math.ceil(n / 8);
  const valid = new Uint8Array(n);
  for (let i = 0; i < n; i++) valid[i] = (p[flagsAt + (i >> 3)]! >> (i & 7)) & 1;
  const hashes = p.slice(hashesAt, hashesAt + 16 * n);
  return { state: 'valid', generation: head.seq, table: { volumeSize: size, segmentSize: seg, count: n, open: p[16] === 1, binding, valid, hashes } };
}

function checkBinding(x: unknown): SumsBinding {
  const o = x as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || typeof o.uuid !== 'string' || typeof o.contentId !== 'string' || !Array.isArray(o.chain) || !o.chain.every((c) => typeof c === 'string')) {
    throw new Error('bad binding');
  }
  return { uuid: o.uuid, contentId: o.contentId, chain: o.chain as string[] };
}

/** Read both slots and return the newest valid one (or why there is none). */
export async function readSums(ns: StoreNamespace, volumeSize: number, segmentSize: number): Promise<{ best: (SumsRead & { state: 'valid' }) | null; newestGeneration: number; problems: StrataError[] }> {
  let best: (SumsRead & { state: 'valid' }) | null = null;
  let newest = 0;
  const problems: StrataError[] = [];
  const max = RECORD_OVERHEAD + payloadSize(segmentCountOf(volumeSize, segmentSize), MAX_BINDING);
  for (const name of SUMS_SLOTS) {
    if (!(await ns.exists(name))) continue;
    const store = await ns.open(name, { readOnly: true });
    let r: SumsRead;
    try {
      if (store.size === 0) continue;
      // never read more than the largest record this volume can have: the size is untrusted
      const bytes = await store.read(0, Math.min(store.size, max));
      r = decodeSums(bytes, name, volumeSize, segmentSize);
    } finally {
      await store.close();
    }
    if ('generation' in r && r.generation !== undefined) newest = Math.max(newest, r.generation);
    if (r.state === 'valid') {
      if (!best || r.generation > best.generation) best = r;
    } else if (r.state === 'invalid' || r.state === 'unsupported') problems.push(r.error);
  }
  // a newer record this stratadisk cannot read: do not roll back to an older one
  if (best && problems.some((e) => e.code === 'unsupported')) best = null;
  return { best, newestGeneration: newest, problems };
}

/** Write `t` as `generation` into its slot and flush it. */
export async function writeSums(ns: StoreNamespace, t: SumsTable, generation: number): Promise<void> {
  const rec = encodeSums(t, generation);
  const name = SUMS_SLOTS[generation % 2]!;
  const created = !(await ns.exists(name));
  const store = await ns.open(name, { create: true });
  try {
    await store.write(0, rec);
    if (store.size > rec.length && store.resizable) await store.truncate(rec.length);
    await store.flush();
  } finally {
    await store.close();
  }
  if (created) await ns.sync();
}
