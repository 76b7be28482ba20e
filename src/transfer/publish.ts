/**
 * Publish a volume (or a snapshot of it) into an object store as a version of an image
 * (README.md in this folder): non-zero blocks become chunks named by BLAKE3, chunks the store
 * lacks are packed and uploaded (several PUTs in flight), then segments, the version manifest
 * (the moment the version becomes visible), the image's version marker and the tag.
 *
 * Crash safety: everything is immutable and named by content, so a rerun after a crash rebuilds
 * the same packs; packs that landed (with or without their .idx) are not sent again.
 */
import { StrataError } from '../errors.js';
import type { Extent } from '../volume/map.js';
import { ChunkCatalog, listPacks } from './chunk-catalog.js';
import { HASH_BYTES, hashBytes, hashChunks } from './chunk-hash.js';
import { takeLease, type LeaseOptions } from './leases.js';
import type { ObjectStore } from './object-store.js';
import { checkName, indexKey, markerKey, packKey, segmentKey, tagKey, toHex, versionKey } from './object-names.js';
import { encodePackIndex } from './pack-index.js';
import { encodeChunk, PackWriter, type FinishedPack } from './pack-writer.js';
import { loadManifest, resolveVersion } from './published-version.js';
import { encodeSegment, SEGMENT_BLOCKS, type SegmentEntry } from './segment.js';
import { blockCount, encodeVersionManifest, MAX_BLOCK, MIN_BLOCK, VERSION_FORMAT, type SegmentRef, type VersionManifest } from './version-manifest.js';

/** What publish reads: a Volume or a snapshot's VolumeReader. */
export interface PublishSource {
  readonly size: number;
  readonly blockSize: number;
  readInto(offset: number, target: Uint8Array): Promise<void>;
  map(): Promise<Extent[]>;
}

export interface PublishProgress {
  /** bytes of data extents read and hashed, of `total` */
  done: number;
  total: number;
  chunksUploaded: number;
  bytesUploaded: number;
}

export interface PublishOptions {
  image: string;
  /** default 'latest' */
  tag?: string;
  /** deflate-raw each chunk where that saves ≥ 1/8 */
  compress?: boolean;
  /** recorded in the manifest */
  source?: { volume: string; snapshot: string | null; layer: string | null };
  signal?: AbortSignal;
  onProgress?: (p: PublishProgress) => void;
  /** PUTs in flight (default 4) */
  parallel?: number;
  /** pack size bound (default 16 MiB) */
  packBytes?: number;
  /** bytes read and hashed per batch (default 8 MiB) */
  batchBytes?: number;
  lease?: Omit<LeaseOptions, 'signal'>;
  /** creation time of the version (default now) */
  created?: Date;
}

export interface PublishResult {
  contentId: string;
  /** the content equals the version the tag named already: no new version was made */
  unchanged: boolean;
  image: string;
  tag: string;
  size: number;
  blockSize: number;
  /** non-zero blocks of the version */
  chunks: number;
  /** chunks packed and uploaded by this run */
  chunksUploaded: number;
  /** chunks this run packed into packs an interrupted earlier run had uploaded already */
  chunksFound: number;
  /** raw bytes of those chunks */
  rawBytesUploaded: number;
  /** every byte this run PUT (packs, indexes, segments, manifest, marker, tag) */
  bytesUploaded: number;
  /** bytes of .pack objects this run PUT */
  packBytesUploaded: number;
  /** bytes of .idx, segments, manifest, marker and tag this run PUT */
  indexBytesUploaded: number;
  packsWritten: number;
  /** packs this run built that were already in the store (an earlier, interrupted run) */
  packsFound: number;
  segments: number;
  segmentsWritten: number;
  /** stored bytes of this version's chunks (after compression) */
  storedBytes: number;
  /** raw bytes of this version's chunks */
  rawBytes: number;
  /** stored / raw over the chunks this run packed (1 without --compress) */
  compressRatio: number;
  ms: { total: number; catalogue: number; scan: number };
}

const DEFAULT_BATCH = 8 << 20;

function isZero(buf: Uint8Array, at: number, len: number): boolean {
  if ((buf.byteOffset + at) % 4 === 0 && len % 4 === 0) {
    const w = new Uint32Array(buf.buffer, buf.byteOffset + at, len / 4);
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }
  for (let i = at; i < at + len; i++) if (buf[i] !== 0) return false;
  return true;
}

/** The version `image`/`tag` names now, or null (no tag, or one that cannot be read: it is replaced). */
async function taggedVersion(objects: ObjectStore, image: string, tag: string, signal?: AbortSignal): Promise<{ contentId: string; manifest: VersionManifest } | null> {
  try {
    const contentId = await resolveVersion(objects, { image, tag }, signal);
    return { contentId, manifest: await loadManifest(objects, contentId, signal) };
  } catch (e) {
    if (e instanceof StrataError && ['not-found', 'corrupt', 'checksum-mismatch'].includes(e.code)) return null;
    throw e;
  }
}

function sameContent(a: VersionManifest, b: VersionManifest): boolean {
  return (
    a.image === b.image &&
    a.size === b.size &&
    a.blockSize === b.blockSize &&
    a.segments.length === b.segments.length &&
    a.segments.every((s, i) => s.id === b.segments[i]!.id) &&
    JSON.stringify(a.source) === JSON.stringify(b.source)
  );
}

interface PendingSegment {
  index: number;
  blocks: number;
  /** relative block → chunk id */
  entries: { block: number; id: Uint8Array; hex: string }[];
}

export async function publish(objects: ObjectStore, source: PublishSource, options: PublishOptions): Promise<PublishResult> {
  const t0 = performance.now();
  const image = checkName(options.image, 'image');
  const tag = checkName(options.tag ?? 'latest', 'tag');
  const bs = source.blockSize;
  if (bs < MIN_BLOCK || bs > MAX_BLOCK || (bs & (bs - 1)) !== 0) throw new StrataError('unsupported', `Block size ${bs} cannot be published (4 KiB to 1 MiB).`);
  const signal = options.signal;
  const aborted = () => {
    if (signal?.aborted) throw new StrataError('aborted', 'The publish was cancelled; packs that were finished stay in the store and the next publish reuses them.');
  };
  const parallel = Math.max(1, options.parallel ?? 4);
  const lease = await takeLease(objects, 'publish', { ...options.lease, ...(signal ? { signal } : {}) }).catch((e: unknown) => {
    if (e instanceof StrataError && e.code !== 'aborted') throw new StrataError(e.code, `${e.message} No new version was made in ${objects.description}: nothing was published.`, { cause: e });
    throw e;
  });
  const inFlight = new Set<Promise<void>>();
  /** how far the version manifest got: a failure after its put began may leave a version (untagged) */
  let versionPut: { id: string; landed: boolean } | null = null;
  try {
    aborted();
    const listing = await listPacks(objects, signal);
    const catalog = await ChunkCatalog.load(objects, { listing, ...(signal ? { signal } : {}) });
    const existingSegments = new Set<string>();
    for await (const o of objects.list('segments/', signal)) existingSegments.add(o.key);
    const tCat = performance.now();

    const r = {
      chunks: 0,
      chunksUploaded: 0,
      rawBytesUploaded: 0,
      bytesUploaded: 0,
      packBytesUploaded: 0,
      indexBytesUploaded: 0,
      packsWritten: 0,
      packsFound: 0,
      segmentsWritten: 0,
      storedBytes: 0,
      rawBytes: 0,
      chunksFound: 0,
      rawPacked: 0,
      storedPacked: 0,
    };
    const put = async (key: string, data: Uint8Array, kind: 'pack' | 'index'): Promise<void> => {
      await objects.put(key, data, signal ? { signal } : {});
      r.bytesUploaded += data.length;
      if (kind === 'pack') r.packBytesUploaded += data.length;
      else r.indexBytesUploaded += data.length;
    };

    // Uploads: at most `parallel` in flight; the first failure stops the publish.
    let failure: unknown;
    const progress = { done: 0, total: 0 };
    const report = () => options.onProgress?.({ done: progress.done, total: progress.total, chunksUploaded: r.chunksUploaded, bytesUploaded: r.bytesUploaded });
    const uploadPack = async (pack: FinishedPack): Promise<void> => {
      const p = toHex(await hashBytes(pack.bytes));
      const found = listing.packs.get(p) === pack.bytes.length;
      if (!found) await put(packKey(p), pack.bytes, 'pack');
      await put(indexKey(p), await encodePackIndex(pack.entries), 'index');
      catalog.add(p, pack.entries);
      if (found) {
        r.packsFound++;
        r.chunksFound += pack.entries.length;
      } else {
        r.packsWritten++;
        r.chunksUploaded += pack.entries.length;
        r.rawBytesUploaded += pack.rawBytes;
      }
      r.rawPacked += pack.rawBytes;
      r.storedPacked += pack.bytes.length;
      report();
    };
    const startUpload = async (pack: FinishedPack): Promise<void> => {
      while (inFlight.size >= parallel) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
      const job = uploadPack(pack).then(
        () => void inFlight.delete(job),
        (e: unknown) => {
          inFlight.delete(job);
          failure ??= e;
        },
      );
      inFlight.add(job);
    };
    const drain = async (): Promise<void> => {
      await Promise.all([...inFlight]);
      if (failure !== undefined) throw failure;
    };

    const writer = new PackWriter({ ...(options.compress ? { compress: true } : {}), ...(options.packBytes ? { maxBytes: options.packBytes } : {}) });
    /** chunks packed by this run but not yet in an uploaded pack */
    const packed = new Set<string>();
    const total = blockCount(source.size, bs);
    const segmentCount = Math.ceil(total / SEGMENT_BLOCKS);
    const refs: SegmentRef[] = [];
    const waiting: PendingSegment[] = [];
    let current: PendingSegment | null = null;

    const writeSegment = async (s: PendingSegment): Promise<void> => {
      const packs: string[] = [];
      const packIndex = new Map<string, number>();
      const entries: SegmentEntry[] = s.entries.map((e) => {
        const loc = catalog.get(e.hex);
        if (!loc) throw new StrataError('io', `internal: chunk ${e.hex} has no pack`);
        let k = packIndex.get(loc.pack);
        if (k === undefined) {
          k = packs.length;
          packIndex.set(loc.pack, k);
          packs.push(loc.pack);
        }
        r.storedBytes += loc.stored;
        return { block: e.block, pack: k, offset: loc.offset, stored: loc.stored, codec: loc.codec, id: e.id };
      });
      const bytes = await encodeSegment({ firstBlock: s.index * SEGMENT_BLOCKS, blocks: s.blocks, packs, entries });
      const id = toHex(await hashBytes(bytes));
      if (!existingSegments.has(segmentKey(id))) {
        await put(segmentKey(id), bytes, 'index');
        existingSegments.add(segmentKey(id));
        r.segmentsWritten++;
      }
      refs[s.index] = { id, firstBlock: s.index * SEGMENT_BLOCKS, blocks: s.blocks, entries: entries.length };
    };
    /** Close the open pack, wait for every upload, then write the waiting segments (their chunks all have a pack now). */
    const flushSegments = async (): Promise<void> => {
      const last = writer.finish();
      if (last) await startUpload(last);
      await drain();
      packed.clear();
      while (waiting.length > 0) await writeSegment(waiting.shift()!);
    };
    const segmentFor = async (block: number): Promise<PendingSegment> => {
      const index = Math.floor(block / SEGMENT_BLOCKS);
      while (!current || current.index < index) {
        const next: number = current ? current.index + 1 : 0;
        if (current) waiting.push(current);
        current = { index: next, blocks: Math.min(SEGMENT_BLOCKS, total - next * SEGMENT_BLOCKS), entries: [] };
        // bound the memory held by finished segments waiting for their packs
        if (waiting.length >= 4) await flushSegments();
      }
      return current;
    };

    // The data extents, in block-aligned pieces of at most one batch.
    const extents = await source.map();
    const batch = Math.max(bs, Math.floor((options.batchBytes ?? DEFAULT_BATCH) / bs) * bs);
    const pieces: [at: number, length: number][] = [];
    for (const e of extents) {
      if (!e.data || e.zero) continue;
      const start = Math.floor(e.start / bs) * bs;
      const end = Math.min(source.size, Math.ceil((e.start + e.length) / bs) * bs);
      const lastPiece = pieces[pieces.length - 1];
      let at = start;
      if (lastPiece && lastPiece[0] + lastPiece[1] > at) at = lastPiece[0] + lastPiece[1];
      for (; at < end; at += batch) pieces.push([at, Math.min(batch, end - at)]);
    }
    progress.total = pieces.reduce((n, p) => n + p[1], 0);
    report();
    const bufs = [new Uint8Array(Math.min(batch, progress.total || bs)), new Uint8Array(Math.min(batch, progress.total || bs))];
    const load = async (k: number): Promise<Uint8Array> => {
      const [at, length] = pieces[k]!;
      const view = bufs[k % 2]!.subarray(0, length);
      await source.readInto(at, view);
      return view;
    };
    const ids = new Uint8Array((batch / bs) * HASH_BYTES);
    let next = pieces.length > 0 ? load(0) : undefined;
    try {
      for (let k = 0; k < pieces.length; k++) {
        const data = await next!;
        aborted();
        if (failure !== undefined) throw failure;
        next = k + 1 < pieces.length ? load(k + 1) : undefined;
        next?.catch(() => {});
        const [at, length] = pieces[k]!;
        const n = Math.ceil(length / bs);
        // Zero blocks are not chunks; hash the rest in one call.
        await hashChunks(data, bs, ids);
        const fresh: { id: Uint8Array; data: Uint8Array }[] = [];
        for (let i = 0; i < n; i++) {
          const from = i * bs;
          const len = Math.min(bs, length - from);
          if (isZero(data, from, len)) continue;
          const block = at / bs + i;
          const seg = await segmentFor(block);
          const id = ids.slice(i * HASH_BYTES, (i + 1) * HASH_BYTES);
          const hex = toHex(id);
          seg.entries.push({ block: block - seg.index * SEGMENT_BLOCKS, id, hex });
          r.chunks++;
          r.rawBytes += len;
          if (catalog.get(hex) || packed.has(hex)) continue;
          packed.add(hex);
          fresh.push({ id, data: data.subarray(from, from + len) });
        }
        // New chunks go into packs in block order (packs stay deterministic); with --compress
        // they are deflated all at once first (zlib works off the main thread, on every core).
        const encoded = options.compress ? await Promise.all(fresh.map((f) => encodeChunk(f.data))) : undefined;
        for (const [j, f] of fresh.entries()) {
          const closed = await writer.add(f.id, f.data, encoded?.[j]);
          if (closed) await startUpload(closed);
        }
        progress.done += length;
        report();
      }
    } finally {
      if (next) await next.catch(() => {});
    }
    aborted();
    // Every segment, including the empty ones after the last data block.
    if (segmentCount > 0) await segmentFor((segmentCount - 1) * SEGMENT_BLOCKS);
    if (current) waiting.push(current);
    await flushSegments();
    const tScan = performance.now();
    aborted();

    const manifest: VersionManifest = {
      format: VERSION_FORMAT,
      image,
      size: source.size,
      blockSize: bs,
      created: (options.created ?? new Date()).toISOString(),
      source: options.source ?? { volume: image, snapshot: null, layer: null },
      segments: refs,
      chunks: r.chunks,
      storedBytes: r.storedBytes,
    };
    // Unchanged content under the same tag is the version the tag names already (not a new one
    // that differs only by its creation time).
    const tagged = await taggedVersion(objects, image, tag, signal);
    const unchanged = tagged !== null && sameContent(tagged.manifest, manifest);
    const bytes = encodeVersionManifest(manifest);
    const contentId = unchanged ? tagged.contentId : toHex(await hashBytes(bytes));
    lease.assertHeld();
    // The version becomes visible here: everything it names is in the store already.
    versionPut = { id: contentId, landed: false };
    if (!unchanged && (await objects.head(versionKey(contentId), signal)) === null) await put(versionKey(contentId), bytes, 'index');
    versionPut.landed = true;
    if ((await objects.head(markerKey(image, contentId), signal)) === null) await put(markerKey(image, contentId), new Uint8Array(0), 'index');
    if (!unchanged) await put(tagKey(image, tag), new TextEncoder().encode(JSON.stringify({ version: contentId, published: new Date().toISOString() })), 'index');
    report();
    const tEnd = performance.now();
    return {
      contentId,
      unchanged,
      image,
      tag,
      size: source.size,
      blockSize: bs,
      chunks: r.chunks,
      chunksUploaded: r.chunksUploaded,
      rawBytesUploaded: r.rawBytesUploaded,
      bytesUploaded: r.bytesUploaded,
      packBytesUploaded: r.packBytesUploaded,
      indexBytesUploaded: r.indexBytesUploaded,
      packsWritten: r.packsWritten,
      packsFound: r.packsFound,
      segments: refs.length,
      segmentsWritten: r.segmentsWritten,
      storedBytes: r.storedBytes,
      rawBytes: r.rawBytes,
      chunksFound: r.chunksFound,
      compressRatio: r.rawPacked > 0 ? r.storedPacked / r.rawPacked : 1,
      ms: { total: tEnd - t0, catalogue: tCat - t0, scan: tScan - tCat },
    };
  } catch (e) {
    if (signal?.aborted && !(e instanceof StrataError && e.code === 'aborted')) {
      throw new StrataError('aborted', 'The publish was cancelled; packs that were finished stay in the store and the next publish reuses them.', { cause: e });
    }
    // Say exactly what the store holds now (the CLI words Ctrl-C itself).
    if (e instanceof StrataError && e.code !== 'aborted') {
      const kept = versionPut === null
        ? `No new version was made in ${objects.description}; packs that were finished stay there, and publishing again sends only what is missing.`
        : versionPut.landed
          ? `Version ${versionPut.id} is in ${objects.description}, but ${image}:${tag} may not name it yet; publishing again finishes that without sending the data again.`
          : `Version ${versionPut.id} may or may not have reached ${objects.description} (its manifest's write failed), and ${image}:${tag} does not name it; publishing again finishes it without sending the data again.`;
      throw new StrataError(e.code, `${e.message} ${kept}`, { cause: e });
    }
    throw e;
  } finally {
    await Promise.allSettled([...inFlight]);
    await lease.release();
  }
}
