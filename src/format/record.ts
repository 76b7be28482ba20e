import { StrataError } from '../errors.js';
import { xxh3_64 } from '../wasm/index.js';

/**
 * Checksummed records: the unit of every metadata change on a store.
 *
 *   offset  size  field
 *   0       4     magic (per record family, little-endian u32)
 *   4       2     kind
 *   6       2     format version
 *   8       8     sequence number (u64, strictly increasing within a log)
 *   16      4     payload length
 *   20      4     reserved, zero
 *   24      n     payload
 *   24+n    8     XXH3-64 of bytes [0, 24+n)
 *
 * A record is valid only if its magic, version, bounds and checksum all agree, so a torn or
 * stale record is recognised and never half-applied.
 */
export const RECORD_HEADER = 24;
export const RECORD_OVERHEAD = RECORD_HEADER + 8;

export interface RecordHead {
  magic: number;
  kind: number;
  version: number;
  seq: number;
  length: number;
}

export function encodeRecord(head: RecordHead, payload: Uint8Array, target?: Uint8Array, at = 0): Uint8Array {
  const total = RECORD_OVERHEAD + payload.length;
  const out = target ?? new Uint8Array(total);
  const v = new DataView(out.buffer, out.byteOffset + at, total);
  v.setUint32(0, head.magic, true);
  v.setUint16(4, head.kind, true);
  v.setUint16(6, head.version, true);
  v.setUint32(8, head.seq % 2 ** 32, true);
  v.setUint32(12, Math.floor(head.seq / 2 ** 32), true);
  v.setUint32(16, payload.length, true);
  v.setUint32(20, 0, true);
  out.set(payload, at + RECORD_HEADER);
  const sum = xxh3_64(out.subarray(at, at + RECORD_HEADER + payload.length));
  v.setBigUint64(RECORD_HEADER + payload.length, sum, true);
  return out;
}

/** Parse a header; returns null when the bytes cannot be the start of a record of this family. */
export function decodeHead(bytes: Uint8Array, magic: number, maxPayload: number): RecordHead | null {
  if (bytes.length < RECORD_HEADER) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, RECORD_HEADER);
  if (v.getUint32(0, true) !== magic) return null;
  const length = v.getUint32(16, true);
  if (length > maxPayload || v.getUint32(20, true) !== 0) return null;
  const hi = v.getUint32(12, true);
  if (hi >= 2 ** 21) return null;
  return { magic, kind: v.getUint16(4, true), version: v.getUint16(6, true), seq: hi * 2 ** 32 + v.getUint32(8, true), length };
}

/** Check the trailer of a whole record held in `bytes` (header + payload + checksum). */
export function checksumOk(bytes: Uint8Array, length: number): boolean {
  if (bytes.length < RECORD_OVERHEAD + length) return false;
  const v = new DataView(bytes.buffer, bytes.byteOffset, RECORD_OVERHEAD + length);
  return v.getBigUint64(RECORD_HEADER + length, true) === xxh3_64(bytes.subarray(0, RECORD_HEADER + length));
}

/** What to do about damaged volume metadata: `check` cannot help (it stops at the same damage); `salvage` reads around it. */
export const VOLUME_DAMAGE_ADVICE = 'Run `stratadisk salvage DIR OUT` to export every snapshot and the live view as far as they are still readable, or restore the volume from a copy.';

/** The same for shadow copy metadata (diff areas, catalog), which `salvage` does not read. */
export const SHADOW_DAMAGE_ADVICE = 'The shadow copies it describes cannot be read as they are; restore the shadow directory from a copy if you have one.';

export function corrupt(what: string, detail: string, advice = VOLUME_DAMAGE_ADVICE): StrataError {
  return new StrataError('corrupt', `${what} is damaged (${detail}).${advice ? ` ${advice}` : ''}`);
}

/** Record magics live in the format registry (src/format/magic.ts); re-exported for older imports. */
export { MAGIC_MANIFEST, MAGIC_MAP, MAGIC_STAGING } from './magic.js';
