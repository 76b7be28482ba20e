/**
 * The version manifest `versions/<V>` (README.md, "Versions"): JSON, at most 1 MiB, named by the
 * BLAKE3 of its bytes. Parsing checks every field and every bound before anything is sized by it.
 */
import { StrataError } from '../errors.js';
import { HEX_ID, NAME } from './object-names.js';
import { SEGMENT_BLOCKS } from './segment.js';

export { VERSION_MANIFEST_FORMAT as VERSION_FORMAT } from '../format/magic.js';
import { VERSION_MANIFEST_FORMAT as VERSION_FORMAT } from '../format/magic.js';
export const MAX_MANIFEST_BYTES = 1024 * 1024;
export const MIN_BLOCK = 4096;
export const MAX_BLOCK = 1024 * 1024;
/** 2^52 bytes: far beyond any volume, small enough that every block number is exact */
export const MAX_SIZE = 2 ** 52;

export interface SegmentRef {
  id: string;
  firstBlock: number;
  blocks: number;
  entries: number;
}

export interface VersionManifest {
  format: typeof VERSION_FORMAT;
  image: string;
  size: number;
  blockSize: number;
  created: string;
  source: { volume: string; snapshot: string | null; layer: string | null };
  segments: SegmentRef[];
  chunks: number;
  storedBytes: number;
}

export function encodeVersionManifest(m: VersionManifest): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify(m));
  if (bytes.length > MAX_MANIFEST_BYTES) throw new StrataError('unsupported', `The version manifest would take ${bytes.length} bytes (at most ${MAX_MANIFEST_BYTES}); use a larger block size.`);
  return bytes;
}

/** Number of blocks a volume of `size` bytes has. */
export const blockCount = (size: number, blockSize: number): number => Math.ceil(size / blockSize);

export function decodeVersionManifest(bytes: Uint8Array, what: string): VersionManifest {
  const bad = (why: string): never => {
    throw new StrataError('corrupt', `${what} is damaged: ${why}. Publish the version again.`);
  };
  if (bytes.length > MAX_MANIFEST_BYTES) bad(`it holds ${bytes.length} bytes (at most ${MAX_MANIFEST_BYTES})`);
  let j: unknown;
  try {
    j = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return bad('it is not UTF-8 JSON');
  }
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const int = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
  if (!obj(j)) return bad('it is not an object');
  if (j.format !== VERSION_FORMAT) bad(`its format is ${JSON.stringify(String(j.format).slice(0, 40))}, not ${VERSION_FORMAT}`);
  if (typeof j.image !== 'string' || !NAME.test(j.image)) bad('its image name is not valid');
  if (!int(j.size, MAX_SIZE)) bad('its size is not a whole number of bytes');
  const bs = j.blockSize;
  if (!int(bs, MAX_BLOCK) || bs < MIN_BLOCK || (bs & (bs - 1)) !== 0) bad('its block size is not a power of two from 4 KiB to 1 MiB');
  if (typeof j.created !== 'string' || j.created.length > 64 || Number.isNaN(Date.parse(j.created))) bad('its creation time is not a date');
  const src = j.source;
  if (!obj(src) || typeof src.volume !== 'string' || src.volume.length > 4096) bad('its source is not valid');
  const s = src as Record<string, unknown>;
  if (!(s.snapshot === null || (typeof s.snapshot === 'string' && s.snapshot.length <= 256))) bad('its source snapshot is not valid');
  if (!(s.layer === null || s.layer === undefined || (typeof s.layer === 'string' && s.layer.length <= 256))) bad('its source layer is not valid');
  if (!Array.isArray(j.segments)) return bad('it has no segment list');
  const size = j.size as number;
  const blockSize = bs as number;
  const total = blockCount(size, blockSize);
  if (j.segments.length !== Math.ceil(total / SEGMENT_BLOCKS)) bad(`it lists ${j.segments.length} segments for ${total} blocks`);
  const segments: SegmentRef[] = [];
  let next = 0;
  let entries = 0;
  for (const [i, r] of (j.segments as unknown[]).entries()) {
    if (!obj(r) || typeof r.id !== 'string' || !HEX_ID.test(r.id)) return bad(`segment ${i} has no valid id`);
    if (r.firstBlock !== next) bad(`segment ${i} starts at block ${String(r.firstBlock)}, not ${next}`);
    const blocks = Math.min(SEGMENT_BLOCKS, total - next);
    if (r.blocks !== blocks) bad(`segment ${i} covers ${String(r.blocks)} blocks, not ${blocks}`);
    if (!int(r.entries, blocks)) bad(`segment ${i} claims ${String(r.entries)} entries for ${blocks} blocks`);
    segments.push({ id: r.id, firstBlock: next, blocks, entries: r.entries as number });
    next += blocks;
    entries += r.entries as number;
  }
  if (j.chunks !== entries) bad(`it counts ${String(j.chunks)} chunks, its segments ${entries}`);
  if (!int(j.storedBytes, MAX_SIZE * 2)) bad('its stored byte count is not valid');
  return {
    format: VERSION_FORMAT,
    image: j.image as string,
    size,
    blockSize,
    created: j.created as string,
    source: { volume: s.volume as string, snapshot: (s.snapshot as string | null) ?? null, layer: (s.layer as string | null | undefined) ?? null },
    segments,
    chunks: entries,
    storedBytes: j.storedBytes as number,
  };
}
