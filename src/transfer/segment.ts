/**
 * A segment of a version's block table (README.md, "Versions"): for up to 65,536 consecutive
 * blocks, which pack and where each non-zero block's chunk is. Decoding checks every field
 * against what the version manifest says before it allocates anything sized by the input.
 */
import { StrataError } from '../errors.js';
import { HASH_BYTES, hashBytes } from './chunk-hash.js';
import { storedFormOk, STORED_SLACK } from './pack-index.js';

export { MAGIC_SEGMENT as SEGMENT_MAGIC } from '../format/magic.js';
import { MAGIC_SEGMENT as SEGMENT_MAGIC } from '../format/magic.js';
export const SEGMENT_BLOCKS = 65_536;
const HEADER = 28;
export const SEGMENT_ENTRY_BYTES = 17 + HASH_BYTES;

export interface SegmentEntry {
  /** block number relative to the segment's first block */
  block: number;
  /** index into `packs` */
  pack: number;
  offset: number;
  stored: number;
  codec: number;
  id: Uint8Array;
}

export interface Segment {
  firstBlock: number;
  blocks: number;
  /** pack ids, hex */
  packs: string[];
  /** sorted by block */
  entries: SegmentEntry[];
}

/** What the manifest says about a segment: the decoder holds the object to it. */
export interface SegmentExpect {
  firstBlock: number;
  blocks: number;
  entries: number;
  blockSize: number;
}

export async function encodeSegment(s: Segment): Promise<Uint8Array> {
  const body = HEADER + s.packs.length * HASH_BYTES + s.entries.length * SEGMENT_ENTRY_BYTES;
  const out = new Uint8Array(body + HASH_BYTES);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode(SEGMENT_MAGIC), 0);
  dv.setBigUint64(8, BigInt(s.firstBlock), true);
  dv.setUint32(16, s.blocks, true);
  dv.setUint32(20, s.packs.length, true);
  dv.setUint32(24, s.entries.length, true);
  let at = HEADER;
  for (const p of s.packs) {
    for (let i = 0; i < HASH_BYTES; i++) out[at + i] = parseInt(p.slice(2 * i, 2 * i + 2), 16);
    at += HASH_BYTES;
  }
  for (const e of s.entries) {
    dv.setUint32(at, e.block, true);
    dv.setUint32(at + 4, e.pack, true);
    dv.setUint32(at + 8, e.offset, true);
    dv.setUint32(at + 12, e.stored, true);
    out[at + 16] = e.codec;
    out.set(e.id, at + 17);
    at += SEGMENT_ENTRY_BYTES;
  }
  out.set(await hashBytes(out.subarray(0, body)), body);
  return out;
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

export async function decodeSegment(bytes: Uint8Array, expect: SegmentExpect, what: string): Promise<Segment> {
  const bad = (why: string): never => {
    throw new StrataError('corrupt', `${what} is damaged: ${why}. Publish the version again (the store's copy cannot be read).`);
  };
  if (bytes.length < HEADER + HASH_BYTES) bad(`it holds ${bytes.length} bytes, fewer than a header`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== SEGMENT_MAGIC) bad('it does not start with SDSEG001');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const firstBlock = dv.getBigUint64(8, true);
  const blocks = dv.getUint32(16, true);
  const packCount = dv.getUint32(20, true);
  const entryCount = dv.getUint32(24, true);
  if (firstBlock !== BigInt(expect.firstBlock) || blocks !== expect.blocks) bad(`it covers blocks ${firstBlock}+${blocks}, the version says ${expect.firstBlock}+${expect.blocks}`);
  if (entryCount !== expect.entries || entryCount > blocks) bad(`it has ${entryCount} entries, the version says ${expect.entries}`);
  if (packCount > entryCount) bad(`it names ${packCount} packs for ${entryCount} entries`);
  const body = HEADER + packCount * HASH_BYTES + entryCount * SEGMENT_ENTRY_BYTES;
  if (bytes.length !== body + HASH_BYTES) bad(`it holds ${bytes.length} bytes, not ${body + HASH_BYTES}`);
  const sum = await hashBytes(bytes.subarray(0, body));
  for (let i = 0; i < HASH_BYTES; i++) {
    if (sum[i] !== bytes[body + i]) throw new StrataError('checksum-mismatch', `${what} does not match its checksum. Publish the version again.`);
  }
  let at = HEADER;
  const packs: string[] = [];
  for (let i = 0; i < packCount; i++, at += HASH_BYTES) packs.push(hex(bytes.subarray(at, at + HASH_BYTES)));
  const entries: SegmentEntry[] = [];
  let prev = -1;
  for (let i = 0; i < entryCount; i++, at += SEGMENT_ENTRY_BYTES) {
    const block = dv.getUint32(at, true);
    const pack = dv.getUint32(at + 4, true);
    const offset = dv.getUint32(at + 8, true);
    const stored = dv.getUint32(at + 12, true);
    const codec = bytes[at + 16]!;
    if (block <= prev || block >= blocks) bad(`entry ${i} names block ${block} (out of order or past ${blocks})`);
    if (pack >= packCount) bad(`entry ${i} names pack ${pack} of ${packCount}`);
    if (stored > expect.blockSize + STORED_SLACK || !storedFormOk(stored, codec === 0 ? stored : expect.blockSize, codec)) bad(`entry ${i} has an impossible stored size ${stored} or codec ${codec}`);
    entries.push({ block, pack, offset, stored, codec, id: bytes.slice(at + 17, at + 17 + HASH_BYTES) });
    prev = block;
  }
  return { firstBlock: expect.firstBlock, blocks, packs, entries };
}
