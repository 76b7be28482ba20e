import { StrataError } from '../errors.js';
import {
  ManifestStore,
  MANIFEST_FORMAT,
  MANIFEST_SLOTS,
  MANIFEST_VERSION_REMOTE,
  checkBlockSize,
  checkVolumeSize,
  layerId,
  type Manifest,
  type RemoteRecord,
} from '../format/manifest.js';
import { HttpStore, type HttpStats, type HttpStoreOptions, type ImagePin } from '../store/http.js';
import type { StoreNamespace } from '../store/store.js';
import { SparseBitmap, loadKernels, resolveRuns } from '../wasm/index.js';
import { NO_OWNER, type Chain, type ChainLayer } from './chain.js';
import { CopyOnReadStore, absentRuns, type CopyOnReadStats } from './copy-on-read.js';
import { Layer, SLOT_ABSENT } from './layer.js';
import { RunReader } from './run-reader.js';
import type { VerifyMode } from './verify.js';
import { cloneManifest } from './tree.js';

/** How a copy-on-read volume reaches its image. */
export interface RemoteOptions extends HttpStoreOptions {
  /** Largest read-ahead of sequential misses, bytes (default 1 MiB). */
  maxReadAhead?: number;
  /** Fetched blocks are made durable at most this long after they arrive (default 2000 ms; also at every flush and close). */
  cacheFlushMs?: number;
}

export interface CreateRemoteVolumeOptions {
  /** Virtual size (default: the image's size). */
  size?: number;
  blockSize?: number;
  remote?: RemoteOptions;
}

/** Where the bytes of a copy-on-read volume are: `stratadisk info`, the demo and the stream job read this. */
export interface ProvisioningInfo {
  url: string;
  etag: string | null;
  lastModified: string | null;
  imageBytes: number;
  /** bytes of the image the live volume reads locally (fetched, or overwritten) */
  localBytes: number;
  /** bytes of the image the live volume would still fetch */
  remoteBytes: number;
  /** blocks fetched from the image and unchanged since (in the cache layer, not shadowed) */
  cleanBlocks: number;
  /** blocks the live volume has changed (held by a layer above the cache) */
  modifiedBlocks: number;
  /** blocks in the cache layer, shadowed or not */
  cachedBlocks: number;
  /** this session's traffic */
  http: HttpStats;
  copyOnRead: CopyOnReadStats;
}

/** What RemoteBase needs from its volume (the volume's core, core.ts, is one). */
export interface RemoteContext {
  readonly ns: StoreNamespace;
  /** how reads of cached blocks are checked, and the volume's name in errors */
  readonly verify: VerifyMode;
  readonly label: string;
  readonly blockSize: number;
  readonly size: number;
  readonly readOnly: boolean;
  /** Run `fn` holding every block shared (no write runs). */
  shared<T>(fn: () => Promise<T>): Promise<T>;
  /** Run `fn` holding every block exclusively. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  readonly layers: Map<string, Layer>;
  readonly manifest: Manifest;
  commit(m: Manifest): Promise<void>;
  dropLayerFiles(id: string): Promise<void>;
  /** the live chain (its last layer is this base) */
  liveChain(): Chain;
  rebuildChain(): void;
  /** Give the live volume a new empty active layer on `parent`, dropping the old one. Caller holds the write lock. */
  revertToLayer(parent: string): Promise<void>;
}

/** The remote image as the bottom layer of every chain: it owns each block of the image, slot b = block b. */
class RemoteLayer implements ChainLayer {
  readonly id = 'remote';
  readonly owned = new SparseBitmap();

  constructor(readonly data: CopyOnReadStore) {
    if (data.blocks > 0) this.owned.set(0, data.blocks);
  }

  slot(block: number): number {
    return block < this.data.blocks ? block : SLOT_ABSENT;
  }

  dispose(): void {
    this.owned.dispose();
  }
}

/**
 * Create a volume whose base is the image at `url` (a raw disk image served with range requests).
 * One request pins the image (size, ETag, Last-Modified); the manifest records the pin and two
 * layers: the cache (blocks fetched clean) and the active overlay above it (blocks written).
 */
export async function createRemoteVolumeFiles(ns: StoreNamespace, url: string, options: CreateRemoteVolumeOptions = {}): Promise<void> {
  await loadKernels();
  const blockSize = options.blockSize ?? 64 * 1024;
  checkBlockSize(blockSize);
  if (ns.readOnly) throw new StrataError('read-only', 'Cannot create a volume in a read-only namespace.');
  for (const name of MANIFEST_SLOTS) {
    if (await ns.exists(name)) throw new StrataError('exists', 'A volume already exists here; open it, or choose an empty directory.');
  }
  const http = await HttpStore.open(url, options.remote);
  const pin = http.pin;
  await http.close();
  const size = options.size ?? pin.size;
  checkVolumeSize(size, blockSize);
  checkVolumeSize(pin.size, blockSize);
  const cacheId = layerId(1);
  const activeId = layerId(2);
  for (const id of [cacheId, activeId]) await (await Layer.create(ns, id, blockSize)).close();
  const created = new Date().toISOString();
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION_REMOTE,
    uuid: globalThis.crypto.randomUUID(),
    size,
    blockSize,
    layers: [
      { id: cacheId, parent: null, sealed: false, contentId: null, created },
      { id: activeId, parent: cacheId, sealed: false, contentId: null, created },
    ],
    active: activeId,
    snapshots: [],
    nextLayer: 3,
    remote: remoteRecord(pin, cacheId),
  };
  await ManifestStore.create(ns, manifest);
}

function remoteRecord(pin: ImagePin, cache: string): RemoteRecord {
  const r: RemoteRecord = { url: pin.url, size: pin.size, cache };
  if (pin.etag !== undefined) r.etag = pin.etag;
  if (pin.lastModified !== undefined) r.lastModified = pin.lastModified;
  return r;
}

/**
 * The remote base of an open volume: the HTTP source, the copy-on-read store over it and the
 * chain layer that stands for it; reset, refresh, provisioning figures, and the batches of the
 * stream job. Fetched blocks become durable at the volume's flushes, at close, and at most
 * `cacheFlushMs` after they arrive.
 */
export class RemoteBase {
  private source!: HttpStore;
  private cor!: CopyOnReadStore;
  private _layer!: RemoteLayer;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(
    private readonly ctx: RemoteContext,
    private readonly options: RemoteOptions = {},
  ) {
    this.attach(ctx.manifest.remote!);
  }

  private attach(rec: RemoteRecord): void {
    const pin: ImagePin = { url: rec.url, size: rec.size };
    if (rec.etag !== undefined) pin.etag = rec.etag;
    if (rec.lastModified !== undefined) pin.lastModified = rec.lastModified;
    this.source = HttpStore.fromPin(pin, this.options);
    const cache = this.ctx.readOnly ? null : this.ctx.layers.get(rec.cache)!;
    this.cor = new CopyOnReadStore(this.source, cache, this.ctx.blockSize, rec.size, this.options.maxReadAhead);
    this.cor.onCached = () => this.scheduleFlush();
    this.cor.reader = new RunReader(this.ctx.blockSize, this.ctx.verify, this.ctx.label);
    this._layer = new RemoteLayer(this.cor);
  }

  /** The chain layer standing for the image (always the last of a chain). */
  get layer(): ChainLayer {
    return this._layer;
  }

  get record(): RemoteRecord {
    return this.ctx.manifest.remote!;
  }

  get cache(): Layer {
    return this.ctx.layers.get(this.record.cache)!;
  }

  /**
   * Make fetched blocks durable (data first, then their map entries). Holds the cache lock
   * exclusively (no cache write half done); reads served locally go on meanwhile.
   */
  async flushCache(): Promise<void> {
    if (this.ctx.readOnly) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.cor.cacheLock.write(() => this.cache.flush());
  }

  private scheduleFlush(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      // The volume's read lock keeps reset, refresh and close out; flushCache takes the cache lock.
      this.ctx.shared(() => (this.closed ? Promise.resolve() : this.flushCache())).catch(() => {
        // The next flush (or close) reports the error to someone who can act on it.
      });
    }, this.options.cacheFlushMs ?? 2000);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** Where the live volume's bytes are. Synchronous: a few bitmap kernel calls. */
  provisioning(): ProvisioningInfo {
    const rec = this.record;
    const bs = this.ctx.blockSize;
    const chain = this.ctx.liveChain();
    const remoteIdx = chain.layers.length - 1;
    const cacheIdx = remoteIdx - 1;
    let remoteBytes = 0;
    let clean = 0;
    let modified = 0;
    const volBlocks = Math.ceil(this.ctx.size / bs);
    const WINDOW = 1 << 24;
    for (let w = 0; w < volBlocks; w += WINDOW) {
      const runs = resolveRuns(chain.bitmaps, w, Math.min(WINDOW, volBlocks - w));
      for (let r = 0; r < runs.length; r += 3) {
        const s = runs[r]!;
        const n = runs[r + 1]!;
        const owner = runs[r + 2]!;
        if (owner === NO_OWNER) continue;
        if (owner === remoteIdx) remoteBytes += Math.min((s + n) * bs, rec.size) - s * bs;
        else if (owner === cacheIdx) clean += n;
        else modified += n;
      }
    }
    const cache = this.cache;
    return {
      url: rec.url,
      etag: rec.etag ?? null,
      lastModified: rec.lastModified ?? null,
      imageBytes: rec.size,
      localBytes: rec.size - remoteBytes,
      remoteBytes,
      cleanBlocks: clean,
      modifiedBlocks: modified,
      cachedBlocks: cache.dataBlocks + cache.zeroBlocks,
      http: { ...this.source.stats },
      copyOnRead: { ...this.cor.stats },
    };
  }

  /**
   * Blocks the stream job must fetch so that the volume works offline: every image block not in
   * the cache; without snapshots, blocks the live volume has overwritten are skipped (nobody
   * reads their image version). Flat [start, end) pairs within [from, to).
   */
  missingRuns(from: number, to: number): number[] {
    const cache = this.cache;
    const end = Math.min(to, this.cor.blocks);
    const skipOverwritten = this.ctx.manifest.snapshots.length === 0;
    const out: number[] = [];
    if (skipOverwritten) {
      const chain = this.ctx.liveChain();
      const remoteIdx = chain.layers.length - 1;
      const runs = resolveRuns(chain.bitmaps, from, Math.max(0, end - from));
      for (let r = 0; r < runs.length; r += 3) {
        if (runs[r + 2] !== remoteIdx) continue;
        const s = runs[r]!;
        const e = s + runs[r + 1]!;
        if (out.length > 0 && out[out.length - 1] === s) out[out.length - 1] = e;
        else out.push(s, e);
      }
      return out;
    }
    return absentRuns(cache, from, end, out);
  }

  /** Bytes of the image that `missingRuns` covers over the whole image. */
  missingBytes(): number {
    const runs = this.missingRuns(0, this.cor.blocks);
    const bs = this.ctx.blockSize;
    let n = 0;
    for (let i = 0; i < runs.length; i += 2) n += Math.min(runs[i + 1]! * bs, this.record.size) - runs[i]! * bs;
    return n;
  }

  /** Fetch image blocks [first, first + count) that are not local yet (stream job). Returns the bytes fetched. */
  fetchBlocks(first: number, count: number): Promise<number> {
    this.assertWritable('stream the image');
    return this.ctx.shared(async () => {
      const runs = this.missingRuns(first, first + count);
      const ps: Promise<number>[] = [];
      for (let i = 0; i < runs.length; i += 2) ps.push(this.cor.fetchBlocks(runs[i]!, runs[i + 1]! - runs[i]!));
      const n = (await Promise.all(ps)).reduce((a, b) => a + b, 0);
      return n * this.ctx.blockSize;
    });
  }

  /** Flush fetched blocks now. */
  flushNow(): Promise<void> {
    return this.ctx.shared(() => this.flushCache());
  }

  /** Drop every block the live volume changed: it reads as the image again (fetched blocks stay). Snapshots are kept. */
  async reset(): Promise<void> {
    this.assertWritable('reset the volume');
    await this.ctx.exclusive(async () => {
      await this.flushCache();
      await this.ctx.revertToLayer(this.record.cache);
    });
  }

  /**
   * Move the volume to another version of its image (`url`, default the same URL, re-pinned to
   * what the server holds now). Blocks the user changed stay; every fetched-clean block is
   * dropped (one manifest commit replaces the cache layer by an empty one), because only
   * fetching a block again can tell whether the new version changed it. Returns false when the
   * image is still the pinned version (nothing to do).
   */
  async refresh(url = this.record.url): Promise<boolean> {
    this.assertWritable('refresh the image');
    const probe = await HttpStore.open(url, this.options);
    const pin = probe.pin;
    await probe.close();
    checkVolumeSize(pin.size, this.ctx.blockSize);
    return this.ctx.exclusive(async () => {
      const old = this.record;
      if (old.url === pin.url && old.size === pin.size && (old.etag ?? null) === (pin.etag ?? null) && (old.lastModified ?? null) === (pin.lastModified ?? null)) return false;
      const m = cloneManifest(this.ctx.manifest);
      const id = layerId(m.nextLayer);
      const fresh = await Layer.create(this.ctx.ns, id, this.ctx.blockSize);
      await this.ctx.ns.sync();
      m.nextLayer++;
      m.layers = m.layers.filter((l) => l.id !== old.cache);
      for (const l of m.layers) if (l.parent === old.cache) l.parent = id;
      m.layers.unshift({ id, parent: null, sealed: false, contentId: null, created: new Date().toISOString() });
      m.remote = remoteRecord(pin, id);
      try {
        await this.ctx.commit(m);
      } catch (e) {
        await fresh.close();
        throw e;
      }
      this.ctx.layers.set(id, fresh);
      await this.ctx.dropLayerFiles(old.cache);
      await this.detach();
      this.attach(m.remote);
      this.ctx.rebuildChain();
      return true;
    });
  }

  private assertWritable(what: string): void {
    if (this.ctx.readOnly) throw new StrataError('read-only', `Cannot ${what}: the volume is open read-only.`);
  }

  private async detach(): Promise<void> {
    this._layer.dispose();
    await this.source.close();
  }

  /** Stop the flush timer and the HTTP source. The volume flushes the cache before calling this. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.detach();
  }
}
