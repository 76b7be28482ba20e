/**
 * The reader of a published version (README.md in this folder). Everything it fetches is
 * checked against the name it was fetched by: the manifest against the version content ID, each
 * segment against its id (and the manifest's bounds), each chunk against its BLAKE3 id. Damaged
 * or hostile objects end in a StrataError ('corrupt', 'checksum-mismatch', 'not-found'), never
 * in wrong bytes, a hang, or an allocation sized by a field of the store.
 */
import { StrataError } from '../errors.js';
import { HASH_BYTES, hashBytes, hashChunks } from './chunk-hash.js';
import { inflateChunk } from './chunk-codec.js';
import type { ObjectStore } from './object-store.js';
import { checkName, HEX_ID, packKey, segmentKey, tagKey, toHex, versionKey } from './object-names.js';
import { CODEC_RAW } from './pack-index.js';
import { decodeSegment, SEGMENT_ENTRY_BYTES, type Segment, type SegmentEntry } from './segment.js';
import { decodeVersionManifest, MAX_MANIFEST_BYTES, type VersionManifest } from './version-manifest.js';

export type VersionRef = { image: string; tag: string } | { contentId: string };

export interface OpenPublishedOptions {
  signal?: AbortSignal;
  /** range GETs in flight per read (default 6) */
  parallel?: number;
  /** at most this many bytes per coalesced range GET (default 16 MiB) */
  maxRangeBytes?: number;
  /** decoded segments kept (default 64) */
  cachedSegments?: number;
  /** the longest single read (default 256 MiB): a version's size comes from the store, so reads are made in pieces */
  maxReadBytes?: number;
}

export interface PublishedVersion {
  readonly contentId: string;
  readonly image: string;
  readonly size: number;
  readonly blockSize: number;
  readonly manifest: VersionManifest;
  /** `length` bytes at `offset` (within the version) */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
}

const MAX_TAG_BYTES = 4096;

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Resolve `ref` to a version content ID (a tag is read, bounded, and checked). */
export async function resolveVersion(objects: ObjectStore, ref: VersionRef, signal?: AbortSignal): Promise<string> {
  if ('contentId' in ref) {
    if (!HEX_ID.test(ref.contentId)) throw new StrataError('invalid-argument', `${JSON.stringify(ref.contentId.slice(0, 80))} is not a version content ID (64 lower-case hex digits).`);
    return ref.contentId;
  }
  const key = tagKey(checkName(ref.image, 'image'), checkName(ref.tag, 'tag'));
  const bytes = await objects.get(key, { offset: 0, length: MAX_TAG_BYTES + 1 }, signal);
  if (bytes === null) throw new StrataError('not-found', `${objects.description} has no tag ${ref.tag} of image ${ref.image}. List what it has with \`stratadisk versions URL\`.`);
  let version: unknown;
  try {
    if (bytes.length > MAX_TAG_BYTES) throw new Error('too long');
    version = (JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as { version?: unknown }).version;
  } catch {
    version = undefined;
  }
  if (typeof version !== 'string' || !HEX_ID.test(version)) throw new StrataError('corrupt', `${objects.description}: ${key} is damaged (no version content ID in it). Publish the image again to rewrite the tag.`);
  return version;
}

/** Fetch and verify `versions/<id>`. */
export async function loadManifest(objects: ObjectStore, contentId: string, signal?: AbortSignal): Promise<VersionManifest> {
  const key = versionKey(contentId);
  const what = `${objects.description}: ${key}`;
  const bytes = await objects.get(key, { offset: 0, length: MAX_MANIFEST_BYTES + 1 }, signal);
  if (bytes === null) throw new StrataError('not-found', `${objects.description} has no version ${contentId}. List what it has with \`stratadisk versions URL\`.`);
  if (bytes.length > MAX_MANIFEST_BYTES) throw new StrataError('corrupt', `${what} is larger than a version manifest can be (${MAX_MANIFEST_BYTES} bytes).`);
  if (toHex(await hashBytes(bytes)) !== contentId) throw new StrataError('checksum-mismatch', `${what} does not match its name (BLAKE3); the store's copy is damaged or was replaced. Publish the version again.`);
  return decodeVersionManifest(bytes, what);
}

/** Fetch and verify one segment of `m`. */
export async function loadSegment(objects: ObjectStore, m: VersionManifest, index: number, signal?: AbortSignal): Promise<Segment> {
  const ref = m.segments[index]!;
  const key = segmentKey(ref.id);
  const what = `${objects.description}: ${key}`;
  // packs ≤ entries, so this is the most a segment with `entries` entries can hold
  const bound = 28 + ref.entries * (SEGMENT_ENTRY_BYTES + HASH_BYTES) + HASH_BYTES;
  const bytes = await objects.get(key, { offset: 0, length: bound + 1 }, signal);
  if (bytes === null) throw new StrataError('not-found', `${what} is missing (the version names it). Publish the version again.`);
  if (bytes.length > bound) throw new StrataError('corrupt', `${what} is larger than its ${ref.entries} entries allow.`);
  if (toHex(await hashBytes(bytes)) !== ref.id) throw new StrataError('checksum-mismatch', `${what} does not match its name (BLAKE3). Publish the version again.`);
  return decodeSegment(bytes, { firstBlock: ref.firstBlock, blocks: ref.blocks, entries: ref.entries, blockSize: m.blockSize }, what);
}

export async function openPublishedVersion(objects: ObjectStore, ref: VersionRef, options: OpenPublishedOptions = {}): Promise<PublishedVersion> {
  const contentId = await resolveVersion(objects, ref, options.signal);
  const m = await loadManifest(objects, contentId, options.signal);
  if ('image' in ref && m.image !== ref.image) {
    throw new StrataError('corrupt', `${objects.description}: tag ${ref.tag} of image ${ref.image} names version ${contentId}, which belongs to image ${m.image}.`);
  }
  return new VersionReader(objects, contentId, m, options);
}

interface Want {
  block: number;
  pack: string;
  e: SegmentEntry;
}

interface Range {
  pack: string;
  start: number;
  end: number;
  wants: Want[];
}

class VersionReader implements PublishedVersion {
  readonly image: string;
  readonly size: number;
  readonly blockSize: number;
  private readonly segments = new Map<number, Promise<Segment>>();

  constructor(
    private readonly objects: ObjectStore,
    readonly contentId: string,
    readonly manifest: VersionManifest,
    private readonly options: OpenPublishedOptions,
  ) {
    this.image = manifest.image;
    this.size = manifest.size;
    this.blockSize = manifest.blockSize;
  }

  private segment(index: number, signal?: AbortSignal): Promise<Segment> {
    let p = this.segments.get(index);
    if (!p) {
      p = loadSegment(this.objects, this.manifest, index, signal);
      this.segments.set(index, p);
      p.catch(() => this.segments.delete(index));
      const max = this.options.cachedSegments ?? 64;
      for (const k of this.segments.keys()) {
        if (this.segments.size <= max) break;
        if (k !== index) this.segments.delete(k);
      }
    }
    return p;
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new StrataError('out-of-range', `Read of ${length} bytes at ${offset} is outside version ${this.contentId} (${this.size} bytes).`);
    }
    const maxRead = this.options.maxReadBytes ?? 256 << 20;
    if (length > maxRead) throw new StrataError('invalid-argument', `A read of ${length} bytes is longer than ${maxRead}; read a published version in pieces.`);
    if (signal?.aborted) throw new StrataError('aborted', 'The read was cancelled.');
    if (length === 0) return new Uint8Array(0);
    const bs = this.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((offset + length - 1) / bs);
    const wants: Want[] = [];
    for (let s = Math.floor(first / 65_536); s <= Math.floor(last / 65_536); s++) {
      const seg = await this.segment(s, signal);
      const from = Math.max(first, seg.firstBlock) - seg.firstBlock;
      const to = Math.min(last, seg.firstBlock + seg.blocks - 1) - seg.firstBlock;
      let lo = 0;
      let hi = seg.entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (seg.entries[mid]!.block < from) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < seg.entries.length && seg.entries[i]!.block <= to; i++) {
        const e = seg.entries[i]!;
        wants.push({ block: seg.firstBlock + e.block, pack: seg.packs[e.pack]!, e });
      }
    }
    // Coalesce chunks that sit back to back in one pack (or are the same chunk) into one range GET.
    wants.sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.e.offset - b.e.offset));
    const maxRange = this.options.maxRangeBytes ?? 16 << 20;
    const ranges: Range[] = [];
    for (const w of wants) {
      const r = ranges[ranges.length - 1];
      const end = w.e.offset + w.e.stored;
      if (r && r.pack === w.pack && w.e.offset <= r.end && Math.max(r.end, end) - r.start <= maxRange) {
        r.end = Math.max(r.end, end);
        r.wants.push(w);
      } else ranges.push({ pack: w.pack, start: w.e.offset, end, wants: [w] });
    }
    // The common case of an image published in one go: one range holds every block of the read,
    // raw and in block order. Its verified bytes are the answer (a view, no second copy).
    const only = ranges.length === 1 ? ranges[0]! : undefined;
    if (only && only.wants.length === last - first + 1 && only.wants.every((w, i) => w.block === first + i && w.e.codec === CODEC_RAW && w.e.offset === only.start + i * bs && w.e.stored === Math.min(bs, this.size - w.block * bs))) {
      const bytes = await this.fetchRange(only, offset, null, signal);
      const from = offset - first * bs;
      return bytes.subarray(from, from + length);
    }
    const out = new Uint8Array(length);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < ranges.length && !failed) {
        if (signal?.aborted) throw new StrataError('aborted', 'The read was cancelled.');
        await this.fetchRange(ranges[next++]!, offset, out, signal).catch((e: unknown) => {
          failed = true;
          throw e;
        });
      }
    };
    const workers = Array.from({ length: Math.min(this.options.parallel ?? 6, ranges.length) }, worker);
    const settled = await Promise.allSettled(workers);
    const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (rejected) throw rejected.reason;
    return out;
  }

  /** Fetch and verify one range; copy its blocks' parts into `out` (at their place from `offset`), or, with `out` null, return the verified bytes. */
  private async fetchRange(range: Range, offset: number, out: Uint8Array | null, signal?: AbortSignal): Promise<Uint8Array> {
    const { pack, start } = range;
    const length = range.end - start;
    const key = packKey(pack);
    const what = `${this.objects.description}: ${key}`;
    const bytes = await this.objects.get(key, { offset: start, length }, signal);
    if (bytes === null) throw new StrataError('not-found', `${what} is missing (version ${this.contentId} names it). Publish the version again.`);
    if (bytes.length !== length) throw new StrataError('corrupt', `${what} ends before byte ${start + length}, where version ${this.contentId} says chunks are. Publish the version again.`);
    const bs = this.blockSize;
    const hashed = await hashRuns(range.wants, bytes, start, bs);
    for (const w of range.wants) {
      const stored = bytes.subarray(w.e.offset - start, w.e.offset - start + w.e.stored);
      const expect = Math.min(bs, this.size - w.block * bs);
      const chunkWhat = `chunk ${toHex(w.e.id)} (block ${w.block}) in ${what}`;
      let raw: Uint8Array;
      if (w.e.codec === CODEC_RAW) raw = stored;
      else raw = await inflateChunk(stored, expect, chunkWhat);
      if (raw.length !== expect) throw new StrataError('corrupt', `${chunkWhat} holds ${raw.length} bytes, not ${expect}. Publish the version again.`);
      if (!equalBytes(hashed.get(w) ?? (await hashBytes(raw)), w.e.id)) throw new StrataError('checksum-mismatch', `${chunkWhat} does not match its name (BLAKE3); the store's copy is damaged or was replaced. Publish the version again.`);
      if (out === null) continue;
      const blockStart = w.block * bs;
      const from = Math.max(offset, blockStart);
      const to = Math.min(offset + out.length, blockStart + expect);
      out.set(raw.subarray(from - blockStart, to - blockStart), from - offset);
    }
    return bytes;
  }
}

/**
 * BLAKE3 of the raw, whole-block chunks that lie back to back in `bytes` (a coalesced range of
 * one pack), one kernel call per run instead of one per chunk. Other chunks (compressed, the
 * short last block, repeats) are hashed one by one by the caller.
 */
async function hashRuns(wants: readonly Want[], bytes: Uint8Array, start: number, bs: number): Promise<Map<Want, Uint8Array>> {
  const out = new Map<Want, Uint8Array>();
  const whole = (w: Want) => w.e.codec === CODEC_RAW && w.e.stored === bs;
  for (let i = 0; i < wants.length; ) {
    if (!whole(wants[i]!)) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < wants.length && whole(wants[j]!) && wants[j]!.e.offset === wants[j - 1]!.e.offset + bs) j++;
    if (j - i > 1) {
      const from = wants[i]!.e.offset - start;
      const hashes = await hashChunks(bytes.subarray(from, from + (j - i) * bs), bs);
      for (let k = i; k < j; k++) out.set(wants[k]!, hashes.subarray((k - i) * HASH_BYTES, (k - i + 1) * HASH_BYTES));
    }
    i = j;
  }
  return out;
}
