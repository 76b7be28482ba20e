/**
 * The `.idx` of a pack (README.md, "Chunks and packs"): which chunks a pack holds and where.
 * Decoding checks every bound before it allocates anything sized by the input.
 */
import { StrataError } from '../errors.js';
import { HASH_BYTES, hashBytes } from './chunk-hash.js';

export { MAGIC_PACK_INDEX as PACK_INDEX_MAGIC } from '../format/magic.js';
import { MAGIC_PACK_INDEX as PACK_INDEX_MAGIC } from '../format/magic.js';
export const MAX_PACK_CHUNKS = 1_048_576;
export const MAX_CHUNK_BYTES = 1024 * 1024;
/** how much larger than its raw bytes a stored chunk may be */
export const STORED_SLACK = 1024;
export const CODEC_RAW = 0;
export const CODEC_DEFLATE = 1;

const HEADER = 12;
export const INDEX_ENTRY_BYTES = HASH_BYTES + 13;

export interface PackEntry {
  id: Uint8Array;
  offset: number;
  stored: number;
  raw: number;
  codec: number;
}

function compareIds(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < HASH_BYTES; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

export async function encodePackIndex(entries: readonly PackEntry[]): Promise<Uint8Array> {
  const sorted = [...entries].sort((a, b) => compareIds(a.id, b.id));
  const body = HEADER + sorted.length * INDEX_ENTRY_BYTES;
  const out = new Uint8Array(body + HASH_BYTES);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode(PACK_INDEX_MAGIC), 0);
  dv.setUint32(8, sorted.length, true);
  let at = HEADER;
  for (const e of sorted) {
    out.set(e.id, at);
    dv.setUint32(at + 32, e.offset, true);
    dv.setUint32(at + 36, e.stored, true);
    dv.setUint32(at + 40, e.raw, true);
    out[at + 44] = e.codec;
    at += INDEX_ENTRY_BYTES;
  }
  out.set(await hashBytes(out.subarray(0, body)), body);
  return out;
}

/** Checks on one chunk's stored form, shared by .idx and segments. */
export function storedFormOk(stored: number, raw: number, codec: number): boolean {
  if (codec === CODEC_RAW) return stored === raw;
  if (codec === CODEC_DEFLATE) return stored > 0 && stored <= raw + STORED_SLACK;
  return false;
}

/** Decode and check an .idx against the size of its pack; `what` names it in errors. */
export async function decodePackIndex(bytes: Uint8Array, packSize: number, what: string): Promise<PackEntry[]> {
  const bad = (why: string): never => {
    throw new StrataError('corrupt', `${what} is damaged: ${why}. Remove the pack and its index from the store (\`stratadisk gc\` treats a pack without index as unfinished) and publish again.`);
  };
  if (bytes.length < HEADER + HASH_BYTES) bad(`it holds ${bytes.length} bytes, fewer than a header`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== PACK_INDEX_MAGIC) bad('it does not start with SDPIDX01');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = dv.getUint32(8, true);
  if (count > MAX_PACK_CHUNKS) bad(`it claims ${count} chunks (at most ${MAX_PACK_CHUNKS})`);
  const body = HEADER + count * INDEX_ENTRY_BYTES;
  if (bytes.length !== body + HASH_BYTES) bad(`it holds ${bytes.length} bytes, not the ${body + HASH_BYTES} that ${count} chunks take`);
  const sum = await hashBytes(bytes.subarray(0, body));
  if (compareIds(sum, bytes.subarray(body)) !== 0) throw new StrataError('checksum-mismatch', `${what} does not match its checksum. Remove the pack and its index from the store and publish again.`);
  const out: PackEntry[] = [];
  let at = HEADER;
  let prev: Uint8Array | null = null;
  for (let i = 0; i < count; i++, at += INDEX_ENTRY_BYTES) {
    const id = bytes.slice(at, at + HASH_BYTES);
    const offset = dv.getUint32(at + 32, true);
    const stored = dv.getUint32(at + 36, true);
    const raw = dv.getUint32(at + 40, true);
    const codec = bytes[at + 44]!;
    if (prev && compareIds(prev, id) >= 0) bad(`entry ${i} is out of order`);
    if (raw === 0 || raw > MAX_CHUNK_BYTES) bad(`entry ${i} has ${raw} raw bytes`);
    if (!storedFormOk(stored, raw, codec)) bad(`entry ${i} has an impossible stored size ${stored} or codec ${codec}`);
    if (offset + stored > packSize) bad(`entry ${i} ends at ${offset + stored}, past the pack's ${packSize} bytes`);
    out.push({ id, offset, stored, raw, codec });
    prev = id;
  }
  return out;
}
