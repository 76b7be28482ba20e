import { StrataError } from '../errors.js';
import {
  ManifestStore,
  checkBlockSize,
  checkVolumeSize,
  layerId,
  SNAPSHOT_NAME,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  MANIFEST_SLOTS,
  readManifestSlots,
  type Manifest,
  type SnapshotRecord,
} from '../format/manifest.js';
import { corrupt } from '../format/record.js';
import { checkRange, type NamespaceLock, type StoreNamespace } from '../store/store.js';
import { ALL_BLOCKS, RangeLock } from '../util/range-lock.js';
import { loadKernels, resolve, scanBlocks, type BlockScan } from '../wasm/index.js';
import { Chain, NO_OWNER, type ChainLayer } from './chain.js';
import { Layer, SLOT_ZERO, dataName, mapName } from './layer.js';
import { batchFromRuns, type BlockBatch } from './layer-writer.js';
import { collectGarbage } from './merge.js';
import { chainIds, cloneManifest, layerRecord } from './tree.js';
import { extents, type Extent } from './map.js';
import { checkVolume, type CheckReport } from './check.js';
import { scanForNewerState, slotEvidence, type NewerState } from './newer-state.js';
import { RemoteBase, createRemoteVolumeFiles, type CreateRemoteVolumeOptions, type ProvisioningInfo, type RemoteContext, type RemoteOptions } from './remote-base.js';
import type { VolumeJobAccess } from './job-access.js';
import { mirrorObserver } from './write-mirror.js';
import { WriteObservers, type ByteRange, type ObserverHandle, type WriteEvent, type WriteObserver } from './write-observer.js';
import { VERIFY_MODES, type VerifyMode } from './verify.js';
import { StagedManifest, type ManifestHolder } from './staged-manifest.js';
import { removeStagingMark, writeStagingMark } from './staging-mark.js';
import { checkLinks, parentLink } from './links.js';

type WriteKind = WriteEvent['kind'];

export const DEFAULT_BLOCK_SIZE = 64 * 1024;
/** Writes are processed in batches of at most this many bytes, bounding scratch memory. */
const WRITE_BATCH = 8 << 20;

/** One range of {@link Volume.writeRanges}. */
export interface WriteRange {
  offset: number;
  length: number;
}

export interface CreateVolumeOptions extends OpenVolumeOptions {
  size: number;
  blockSize?: number;
}

export interface OpenVolumeOptions {
  readOnly?: boolean;
  /** Rewrite a layer's map log at flush once it exceeds this size and 4x its live entries (default 1 MiB). */
  compactMapBytes?: number;
  /** How to reach the image of a copy-on-read volume (timeouts, retries, read-ahead, fetch). */
  remote?: RemoteOptions;
  /**
   * Writable opens normally finish interrupted snapshot deletions (layer merges) before
   * returning. With this set they are left for a consolidation job to finish online
   * (`resumeJobs` in src/jobs); the volume reads the same either way.
   */
  deferMerges?: boolean;
  /**
   * How reads are checked against the stored block checksums (src/volume/verify.ts): 'on'
   * (default), 'always' (partial reads re-check their whole block every time) or 'off' (for
   * benchmarks only: damaged data would be returned).
   */
  verify?: VerifyMode;
}

export interface SnapshotInfo {
  name: string;
  layer: string;
  created: string;
  contentId: string | null;
  /** depth of the snapshot's layer in the tree (0 = base) */
  depth: number;
}

export interface VolumeInfo {
  uuid: string;
  size: number;
  blockSize: number;
  readOnly: boolean;
  generation: number;
  active: { layer: string; contentId: string; dataBlocks: number; zeroBlocks: number };
  chain: string[];
  layers: { id: string; parent: string | null; sealed: boolean; contentId: string | null; dataBlocks: number; zeroBlocks: number; dataBytes: number }[];
  snapshots: SnapshotInfo[];
  allocatedBytes: number;
  metadataMemoryBytes: number;
  /** for a volume on a remote image: how much of it is local */
  remote?: ProvisioningInfo;
  /** present when the volume held newer state than its manifest records (see Volume.newerState) */
  newerState?: NewerState[];
}

import type { VolumeReader } from './volume-reader.js';
export type { VolumeReader };

/**
 * A virtual disk: a tree of layers in one namespace of stores, read through the chain from the
 * active layer down, written by redirect-on-write into the active layer. Snapshots seal the
 * active layer and stack a new one (O(1)); deleting a snapshot merges its layer so that no other
 * snapshot changes.
 */
export class Volume implements VolumeReader {
  /**
   * Reads hold their blocks shared, writes exclusively, structure changes (snapshot, revert,
   * merges, close) every block: writes of different blocks run at once, a read never sees half
   * of a write, and nothing overtakes an earlier request for the same blocks.
   */
  private readonly locks = new RangeLock();
  /** writes started and not yet ended (a flush waits for those that started before it) */
  private readonly inflight = new Set<Promise<void>>();
  private layers = new Map<string, Layer>();
  private chain!: Chain;
  private closed = false;
  private compactMapBytes = 1 << 20;
  private writerLock: NamespaceLock | undefined;
  private remoteBase: RemoteBase | undefined;
  /** the block job holding the volume's structure, if any (see beginJob) */
  private job: string | null = null;
  /** write observers (write-observer.ts): block-job mirrors, a write log, replication */
  private readonly observers = new WriteObservers();
  /** set when a mirror job moved the volume elsewhere: the reason writes are refused */
  private retired: string | null = null;
  private verify: VerifyMode = 'on';
  private _newerState: readonly NewerState[] = [];
  /** set while {@link staged} builds a change that is not committed yet */
  private staging: StagingState | null = null;
  /** foreground reads, writes and flushes started: block jobs yield while it moves (src/jobs/foreground.ts) */
  private fgOps = 0;

  private constructor(
    readonly ns: StoreNamespace,
    private manifestStore: ManifestHolder,
    readonly readOnly: boolean,
  ) {}

  get manifest(): Manifest {
    return this.manifestStore.manifest;
  }
  get size(): number {
    return this.manifest.size;
  }
  get blockSize(): number {
    return this.manifest.blockSize;
  }
  get active(): Layer {
    return this.layers.get(this.manifest.active)!;
  }

  /** Create a new, empty volume in `ns` (which must not already hold one). */
  static async create(ns: StoreNamespace, options: CreateVolumeOptions): Promise<Volume> {
    await loadKernels();
    const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
    checkBlockSize(blockSize);
    checkVolumeSize(options.size, blockSize);
    if (ns.readOnly) throw new StrataError('read-only', 'Cannot create a volume in a read-only namespace.');
    for (const name of MANIFEST_SLOTS) {
      if (await ns.exists(name)) throw new StrataError('exists', 'A volume already exists here; open it, or choose an empty directory.');
    }
    const base = layerId(1);
    const layer = await Layer.create(ns, base, blockSize);
    await layer.close();
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      uuid: randomUuid(),
      size: options.size,
      blockSize,
      layers: [{ id: base, parent: null, sealed: false, contentId: null, created: new Date().toISOString() }],
      active: base,
      snapshots: [],
      nextLayer: 2,
    };
    await ManifestStore.create(ns, manifest);
    return Volume.open(ns, { compactMapBytes: options.compactMapBytes, verify: options.verify });
  }

  /**
   * Create a volume whose base is the raw image at `url`, read with HTTP range requests and
   * pinned to its current version: blocks read are fetched once and kept (copy on read), writes
   * stay local (copy on write). See {@link RemoteBase}.
   */
  static async createFromImage(ns: StoreNamespace, url: string, options: CreateRemoteVolumeOptions & OpenVolumeOptions = {}): Promise<Volume> {
    await createRemoteVolumeFiles(ns, url, options);
    return Volume.open(ns, { compactMapBytes: options.compactMapBytes, remote: options.remote, verify: options.verify });
  }

  /**
   * Open the volume in `ns`. Writable opens finish any interrupted snapshot deletion and drop
   * files a crash left behind. If the volume held newer state than its surviving manifest
   * records (a lost manifest slot: see newer-state.ts), a writable open fails with `corrupt`
   * and changes nothing; a read-only open works and lists the evidence in `newerState`.
   */
  static async open(ns: StoreNamespace, options: OpenVolumeOptions = {}): Promise<Volume> {
    await loadKernels();
    const readOnly = options.readOnly ?? ns.readOnly;
    const lock = readOnly ? undefined : await ns.lock?.();
    let ms: ManifestStore;
    try {
      ms = await ManifestStore.open(ns);
    } catch (e) {
      await lock?.release();
      throw e;
    }
    const v = new Volume(ns, ms, readOnly);
    v.writerLock = lock;
    if (options.compactMapBytes !== undefined) v.compactMapBytes = options.compactMapBytes;
    if (options.verify !== undefined) {
      if (!VERIFY_MODES.includes(options.verify)) {
        await lock?.release();
        throw new StrataError('invalid-argument', `verify must be one of ${VERIFY_MODES.join(', ')}, not "${String(options.verify)}".`);
      }
      v.verify = options.verify;
    }
    try {
      for (const l of ms.manifest.layers) {
        // Sealed layers are never written by I/O; only merges (writable opens) touch them.
        const layer = await openLayer(ns, l.id, ms, readOnly);
        v.layers.set(l.id, layer);
        // A sealed layer never changes except by a merge that records its new ID, so a
        // mismatch means its map lost or gained records.
        if (l.sealed && l.contentId !== null && l.contentId !== layer.contentId()) {
          throw withSlotEvidence(corrupt(`Layer ${l.id}`, 'its content no longer matches the content ID recorded when it was sealed'), ms);
        }
      }
      // Each sealed layer matches its own recorded ID (above); each child matches its parent's.
      try {
        checkLinks(ms.manifest, v.label);
      } catch (e) {
        throw withSlotEvidence(e, ms);
      }
      if (ms.manifest.remote) v.remoteBase = new RemoteBase(v.remoteContext(), options.remote);
      v.rebuildChain();
      const scan = await scanForNewerState(ns, ms.manifest, ms.generation, ms.slots, (id) => v.layers.get(id));
      // A read-only open takes no lock: a writer may have committed a newer generation (and
      // written its new layer) since we read the manifest. That is no loss.
      if (readOnly && scan.evidence.length > 0 && (await newerCommitted(ns, ms.generation))) scan.evidence = [];
      v._newerState = scan.evidence;
      if (!readOnly) {
        if (scan.evidence.length > 0) throw newerStateError(ms.generation, scan.evidence);
        await v.removeStale(scan.stale);
        // a staged change that never committed: its layers are gone now, and so is its mark
        await removeStagingMark(ns);
        if (!options.deferMerges) {
          await collectGarbage(v.mergeContext());
          v.rebuildChain();
        }
      }
    } catch (e) {
      await v.remoteBase?.close();
      await v.closeLayers();
      await lock?.release();
      throw e;
    }
    return v;
  }

  /**
   * Evidence that the volume once held newer state than the manifest generation it opened with
   * (see newer-state.ts): empty on a healthy volume. Only read-only opens get this far with
   * some; `check` reports each as a problem.
   */
  get newerState(): readonly NewerState[] {
    return this._newerState;
  }

  private rebuildChain(): void {
    this.chain = this.chainFor(this.manifest.active);
  }

  private chainFor(top: string): Chain {
    const layers: ChainLayer[] = chainIds(this.manifest, top).map((id) => this.layers.get(id)!);
    if (this.remoteBase) layers.push(this.remoteBase.layer);
    return new Chain(layers, this.blockSize, { verify: this.verify, label: this.label });
  }

  /** Names the volume in messages: where it is, else its uuid. */
  get label(): string {
    return `Volume ${this.ns.label ?? this.manifest.uuid}`;
  }

  /** Run `fn` holding every block exclusively: no read or write in flight, none starts. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.locks.run(ALL_BLOCKS[0], ALL_BLOCKS[1], true, fn);
  }

  /** Run `fn` holding every block shared: no write in flight, none starts. */
  private shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.locks.run(ALL_BLOCKS[0], ALL_BLOCKS[1], false, fn);
  }

  private assertOpen(): void {
    if (this.closed) throw new StrataError('closed', 'The volume is closed; open it again to use it.');
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.retired !== null) throw new StrataError('closed', this.retired);
    if (this.readOnly) throw new StrataError('read-only', 'The volume is open read-only; open it without --read-only (or readOnly: false) to change it.');
  }

  private checkIo(offset: number, length: number): void {
    checkRange(offset, length);
    if (offset + length > this.size) {
      throw new StrataError('out-of-range', `The range ${offset}+${length} is past the end of the volume (${this.size} bytes).`);
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const target = new Uint8Array(length);
    await this.readInto(offset, target);
    return target;
  }

  readInto(offset: number, target: Uint8Array): Promise<void> {
    // Not `async`: one promise less on the hottest path; argument errors still reject.
    try {
      this.assertOpen();
      this.checkIo(offset, target.length);
    } catch (e) {
      return Promise.reject(e);
    }
    this.fgOps++;
    const bs = this.blockSize;
    const first = Math.floor(offset / bs);
    const end = Math.ceil((offset + target.length) / bs);
    const got = this.locks.acquire(first, end, false);
    if (typeof got === 'function') {
      // granted at once (the common case): no extra promise
      let p: Promise<void>;
      try {
        p = this.chain.readInto(offset, target);
      } catch (e) {
        got();
        return Promise.reject(e);
      }
      return p.finally(got);
    }
    return got.then((release) => this.chain.readInto(offset, target).finally(release));
  }

  /** See {@link VolumeReader.readIntoNow}. */
  readIntoNow(offset: number, target: Uint8Array): boolean {
    this.assertOpen();
    this.checkIo(offset, target.length);
    // A write holds its blocks across awaits while its map changes are incomplete; one waiting
    // for them must not be overtaken (the order of a read after a write must hold).
    this.fgOps++;
    const bs = this.blockSize;
    return this.locks.sharable(Math.floor(offset / bs), Math.ceil((offset + target.length) / bs)) && this.chain.readIntoNow(offset, target);
  }

  /** Write `data` at `offset`. Durable after the next `flush()`. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.assertWritable();
    this.checkIo(offset, data.length);
    if (data.length === 0) return;
    this.fgOps++;
    await this.observed(offset, offset + data.length, () => this.writeLocked(offset, data, 'data'));
  }

  /**
   * Run a write of bytes [from, to) holding its blocks exclusively, counted in flight until it
   * ends; while an observer holds the volume frozen, wait before it starts and before it
   * resolves (write-observer.ts).
   */
  private async observed(from: number, to: number, fn: () => Promise<void>): Promise<void> {
    const before = this.observers.gate;
    if (before) await before;
    const bs = this.blockSize;
    const run = this.locks.run(Math.floor(from / bs), Math.ceil(to / bs), true, fn);
    const tracked = run.then(noop, noop);
    this.inflight.add(tracked);
    try {
      await run;
    } finally {
      this.inflight.delete(tracked);
    }
    const after = this.observers.gate;
    if (after) await after;
  }

  /**
   * Attach a write observer: from now on it sees every write and flush of the live view, in
   * order (see write-observer.ts for sync/async and failures). Detach it with the handle.
   * While any is attached, revert, reset and staged changes (which change the live view without
   * writes) are refused with `locked`.
   */
  observe(observer: WriteObserver): ObserverHandle {
    this.assertWritable();
    return this.observers.attach(observer);
  }

  /**
   * Write several ranges in one call, as `write` of each in turn would: `data` holds their bytes
   * back to back (range i starts where range i-1 ended in `data`). Ranges must be ascending and
   * must not overlap. Block-aligned ranges are hashed in one pass and stored with as few store
   * writes as the slots allow: new slots are handed out consecutively, so a batch of scattered
   * ranges usually becomes one large write. Durable after the next `flush()`.
   *
   * `scan`, optional: `scanBlocks(data, blockSize)`, computed by the caller beforehand (a bulk
   * writer hashes its next batch while the previous one is being written). It must describe
   * `data` as it is. With a scan, whole-block ranges are gathered over all of `data` (the caller
   * chose its size) instead of 8 MiB at a time, so they usually become a single store write;
   * the scan is used when every range is whole blocks, else the blocks are hashed here as usual.
   */
  async writeRanges(ranges: readonly WriteRange[], data: Uint8Array, scan?: BlockScan): Promise<void> {
    this.assertWritable();
    let total = 0;
    let prevEnd = 0;
    for (const r of ranges) {
      this.checkIo(r.offset, r.length);
      if (r.offset < prevEnd) throw new StrataError('invalid-argument', `writeRanges: the range at ${r.offset} starts before the end of the previous one (${prevEnd}); pass ascending, non-overlapping ranges.`);
      prevEnd = r.offset + r.length;
      total += r.length;
    }
    if (total !== data.length) throw new StrataError('invalid-argument', `writeRanges: the ranges cover ${total} bytes but data holds ${data.length}.`);
    if (total === 0) return;
    if (scan && (scan.zero.length < data.length / this.blockSize || scan.hashes.length < (data.length / this.blockSize) * 16)) {
      throw new StrataError('invalid-argument', `writeRanges: the scan covers fewer blocks than data holds; pass scanBlocks(data, ${this.blockSize}).`);
    }
    this.fgOps++;
    await this.observed(ranges[0]!.offset, prevEnd, () => this.writeRangesLocked(ranges, data, scan));
  }

  private async writeRangesLocked(ranges: readonly WriteRange[], data: Uint8Array, scan?: BlockScan): Promise<void> {
    const bs = this.blockSize;
    // Whole-block ranges gathered for one writeBlocks call: flat [firstBlock, count]* over data[from, pos).
    const runs: number[] = [];
    const limit = scan ? Math.max(WRITE_BATCH, data.length) : WRITE_BATCH;
    let from = 0;
    let pos = 0;
    const gathered = async () => {
      if (pos > from) await this.writeBlocks(runs, data.subarray(from, pos), from === 0 && pos === data.length ? scan : undefined, 'data');
      runs.length = 0;
    };
    for (const r of ranges) {
      if (r.length === 0) continue;
      if (r.offset % bs === 0 && r.length % bs === 0 && r.length <= limit) {
        if (pos - from + r.length > limit) {
          await gathered();
          from = pos;
        }
        const first = r.offset / bs;
        const n = r.length / bs;
        const last = runs.length - 2;
        if (last >= 0 && runs[last]! + runs[last + 1]! === first) runs[last + 1]! += n;
        else runs.push(first, n);
      } else {
        await gathered();
        await this.writeLocked(r.offset, data.subarray(pos, pos + r.length), 'data');
        from = pos + r.length;
      }
      pos += r.length;
    }
    await gathered();
  }

  /** Make a range read as zeros, storing no data (whole blocks become known-zero). */
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.assertWritable();
    this.checkIo(offset, length);
    if (length === 0) return;
    const chunk = new Uint8Array(Math.min(length, WRITE_BATCH));
    this.fgOps++;
    await this.observed(offset, offset + length, async () => {
      for (let at = 0; at < length; at += chunk.length) {
        const n = Math.min(chunk.length, length - at);
        await this.writeLocked(offset + at, chunk.subarray(0, n), 'zero');
      }
    });
  }

  private async writeLocked(offset: number, data: Uint8Array, kind: WriteKind): Promise<void> {
    // checked again under the lock: a write queued behind a mirror's switch-over must not land here
    if (this.retired !== null) throw new StrataError('closed', this.retired);
    const bs = this.blockSize;
    const end = offset + data.length;
    let at = offset;
    // Head: a partial first block is copied up (old content + new bytes) and written whole.
    if (at % bs !== 0 || end - at < bs) {
      const block = Math.floor(at / bs);
      const blockEnd = Math.min((block + 1) * bs, end);
      await this.writePartial(block, at - block * bs, data.subarray(0, blockEnd - offset), kind);
      at = blockEnd;
    }
    // Middle: whole blocks straight from the caller's buffer, in bounded batches.
    const wholeEnd = Math.floor(end / bs) * bs;
    while (at < wholeEnd) {
      const n = Math.min(WRITE_BATCH, wholeEnd - at);
      await this.writeBlocks([at / bs, n / bs], data.subarray(at - offset, at - offset + n), undefined, kind);
      at += n;
    }
    // Tail.
    if (at < end) {
      const block = at / bs;
      await this.writePartial(block, 0, data.subarray(at - offset), kind);
    }
  }

  /** Blocks of scratch for copy-ups, reused (writes run at once, each takes its own). */
  private copyUps: Uint8Array[] = [];

  private async writePartial(block: number, within: number, bytes: Uint8Array, kind: WriteKind): Promise<void> {
    const bs = this.blockSize;
    const buf = this.copyUps.pop() ?? new Uint8Array(bs);
    try {
      await this.copyUpBlock(block, within, bytes, kind, buf);
    } finally {
      if (this.copyUps.length < 64) this.copyUps.push(buf);
    }
  }

  private async copyUpBlock(block: number, within: number, bytes: Uint8Array, kind: WriteKind, buf: Uint8Array): Promise<void> {
    const bs = this.blockSize;
    const start = block * bs;
    const readable = Math.min(bs, this.size - start);
    if (readable < bs) buf.fill(0, readable);
    await this.chain.readInto(start, buf.subarray(0, readable));
    buf.set(bytes, within);
    await this.writeBlocks([block, 1], buf, undefined, kind, { offset: start + within, length: bytes.length });
  }

  private owners = new Uint16Array(0);

  /**
   * Redirect-on-write of whole blocks into the active layer. `runs` is flat [firstBlock, count]*:
   * the blocks that `buf` holds back to back, in ascending order. Observers see it as one write
   * event of `kind` whose caller range is `partial` (a copied-up block), else the runs.
   */
  private async writeBlocks(runs: readonly number[], buf: Uint8Array, scanned: BlockScan | undefined, kind: WriteKind, partial?: ByteRange): Promise<void> {
    const bs = this.blockSize;
    const n = buf.length / bs;
    const active = this.active;
    const scan = scanned ?? scanBlocks(buf, bs);
    let anyZero = false;
    for (let i = 0; i < n; i++) if (scan.zero[i]) { anyZero = true; break; }
    if (anyZero) {
      if (this.owners.length < n) this.owners = new Uint16Array(Math.max(n, 256));
      for (let r = 0, i = 0; r < runs.length; i += runs[r + 1]!, r += 2) resolve(this.chain.bitmaps, runs[r]!, runs[r + 1]!, this.owners.subarray(i));
    }
    // A zero block needs no data: record "known zero" only if something would show through.
    const batch = batchFromRuns(runs, buf, scan, anyZero ? (i, block) => this.owners[i] !== NO_OWNER && active.slot(block) !== SLOT_ZERO : undefined);
    if (this.observers.any) return this.writeObserved(runs, buf, batch, kind, partial);
    if (batch.blocks.length === 0) return;
    // A slot taken since the last flush is overwritten in place; consecutive slots over
    // consecutive bytes of `buf` make one store write (new slots are handed out in order).
    const put = active.stageBlocks(batch, { inPlace: 'fresh', changed: partial && partialWithin(partial, runs[0]! * bs, bs) });
    await put.written;
    await put.commit();
  }

  /** writeBlocks with observers: sync ones in parallel with the layer's writes, async ones after. */
  private async writeObserved(runs: readonly number[], buf: Uint8Array, batch: BlockBatch, kind: WriteKind, partial: ByteRange | undefined): Promise<void> {
    const bs = this.blockSize;
    const ranges: ByteRange[] = [];
    if (partial) ranges.push(partial);
    else for (let r = 0; r < runs.length; r += 2) ranges.push({ offset: runs[r]! * bs, length: runs[r + 1]! * bs });
    const event: WriteEvent = {
      type: 'write',
      seq: this.observers.nextSeq(),
      kind,
      ranges,
      runs,
      data: buf,
      layer: { blocks: batch.blocks, zero: batch.zero ?? null, data: buf, dataIndex: batch.index, hashes: batch.hashes },
    };
    let ok = false;
    try {
      const put = batch.blocks.length > 0 ? this.active.stageBlocks(batch, { inPlace: 'fresh', changed: partial && partialWithin(partial, runs[0]! * bs, bs) }) : null;
      const sync = this.observers.deliverSync(event);
      // the observers' promises never reject; the layer's write is awaited after them (it may
      // reject first, and the event's buffers must outlive the sync observers' use of them)
      if (sync) await sync;
      if (put) {
        await put.written;
        await put.commit();
      }
      ok = true;
    } finally {
      this.observers.settle(event.seq, ok ? event : null);
    }
  }

  /**
   * The durability barrier: every write that completed before this call (and every write
   * started before it, which it waits for) is durable when it resolves. Writes go on while it
   * runs. Flushes are group commits: all callers waiting at once share one data sync and one map
   * sync (Layer.flush).
   */
  async flush(): Promise<void> {
    this.assertOpen();
    if (this.readOnly) return;
    this.fgOps++;
    const before = this.observers.gate;
    if (before) await before;
    const event = this.observers.any ? ({ type: 'flush', seq: this.observers.nextSeq() } as const) : null;
    let ok = false;
    try {
      if (this.inflight.size > 0) await Promise.all(this.inflight);
      const sync = event && this.observers.deliverSync(event);
      await this.active.flush();
      if (sync) await sync;
      ok = true;
    } finally {
      if (event) this.observers.settle(event.seq, ok ? event : null);
    }
    await this.remoteBase?.flushCache();
    await this.compactIfWorthIt();
    const after = this.observers.gate;
    if (after) await after;
  }

  /** Compact the map logs that have grown far beyond their live entries (with no I/O in flight). */
  private async compactIfWorthIt(): Promise<void> {
    const cache = this.remoteBase?.cache;
    const want = (l: Layer | undefined): l is Layer => l !== undefined && !this.closed && l.wantsCompaction(this.compactMapBytes);
    if (!want(this.active) && !want(cache)) return;
    await this.exclusive(async () => {
      for (const layer of [this.active, cache]) {
        if (want(layer)) await layer.serially(async () => (want(layer) ? this.compact(layer) : undefined));
      }
    });
  }

  /**
   * Start writing data already written to the volume out to stable storage, in the background:
   * a later `flush()` then has less left to wait for. It changes nothing and promises nothing
   * (durability still comes only from `flush()`); bulk writers such as an import call it every
   * so often so that the device works while they go on reading and hashing.
   */
  startWriteback(): void {
    if (this.closed || this.readOnly) return;
    this.active.startWriteback();
  }

  /** Rewrite a layer's map log without its overwritten history (amortised O(1) per entry). */
  private async compact(layer: Layer): Promise<void> {
    const log = await layer.writeCompacted(this.ns);
    await this.ns.sync();
    const m = cloneManifest(this.manifest);
    layerRecord(m, layer.id).mapGen = layer.mapGen + 1;
    try {
      await this.manifestStore.commit(m);
    } catch (e) {
      await log.store.close();
      throw e;
    }
    const oldGen = layer.mapGen;
    const old = layer.adoptCompacted(log);
    await old.close();
    await this.ns.delete(mapName(layer.id, oldGen));
    await this.ns.sync();
  }

  // ---- snapshots ----

  /** Seal the active layer as snapshot `name` and stack a new active layer on it. O(1). */
  async snapshot(name: string): Promise<SnapshotInfo> {
    this.assertWritable();
    this.assertNoJob('take a snapshot');
    return this.takeSnapshot(name);
  }

  private takeSnapshot(name: string): Promise<SnapshotInfo> {
    if (!SNAPSHOT_NAME.test(name)) throw new StrataError('invalid-argument', `Snapshot name "${name}" is not allowed: use letters, digits and . _ + : - (up to 128).`);
    return this.exclusive(async () => {
      if (this.manifest.snapshots.some((s) => s.name === name)) throw new StrataError('exists', `A snapshot named "${name}" already exists; pick another name or delete it first.`);
      const old = this.active;
      await old.flush();
      const created = new Date().toISOString();
      const snap: SnapshotRecord = { name, layer: old.id, created };
      await this.stackActiveLayer(old.id, (m) => {
        const rec = layerRecord(m, old.id);
        rec.sealed = true;
        rec.contentId = old.contentId();
        m.snapshots.push(snap);
      });
      return this.snapshotInfo(snap);
    });
  }

  snapshots(): SnapshotInfo[] {
    this.assertOpen();
    return this.manifest.snapshots.map((s) => this.snapshotInfo(s));
  }

  private snapshotInfo(s: SnapshotRecord): SnapshotInfo {
    return { name: s.name, layer: s.layer, created: s.created, contentId: layerRecord(this.manifest, s.layer).contentId, depth: chainIds(this.manifest, s.layer).length - 1 };
  }

  private findSnapshot(name: string): SnapshotRecord {
    const s = this.manifest.snapshots.find((x) => x.name === name);
    if (!s) throw new StrataError('not-found', `No snapshot named "${name}". List them with \`stratadisk snapshots DIR\`.`);
    return s;
  }

  /** A read-only view of snapshot `name`. It follows the snapshot through merges; it fails with `not-found` once the snapshot is deleted. */
  openSnapshot(name: string): VolumeReader {
    this.assertOpen();
    this.findSnapshot(name);
    return this.viewReader(() => this.chainFor(this.findSnapshot(name).layer));
  }

  /** A read-only VolumeReader over whatever chain `chainNow` gives at the time of each call. */
  private viewReader(chainNow: () => Chain): VolumeReader {
    const self = this;
    return {
      size: this.size,
      blockSize: this.blockSize,
      async read(offset: number, length: number) {
        const t = new Uint8Array(length);
        await this.readInto(offset, t);
        return t;
      },
      async readInto(offset: number, target: Uint8Array) {
        self.assertOpen();
        self.checkIo(offset, target.length);
        const bs = self.blockSize;
        await self.locks.run(Math.floor(offset / bs), Math.ceil((offset + target.length) / bs), false, () => chainNow().readInto(offset, target));
      },
      readIntoNow(offset: number, target: Uint8Array) {
        self.assertOpen();
        self.checkIo(offset, target.length);
        const bs = self.blockSize;
        return self.locks.sharable(Math.floor(offset / bs), Math.ceil((offset + target.length) / bs)) && chainNow().readIntoNow(offset, target);
      },
      async map(offset?: number, length?: number) {
        self.assertOpen();
        const [from, to] = self.mapRange(offset, length);
        return self.shared(async () => extents(chainNow(), self.size, from, to));
      },
    };
  }

  /**
   * Create an empty layer on `parent`, commit a manifest making it the active layer (after
   * `change` edits the rest of that manifest), and switch to it. The layer's files are created
   * and synced before the commit; if the commit fails they are orphans, removed at next open.
   */
  private async stackActiveLayer(parent: string | null, change: (m: Manifest) => void): Promise<Layer> {
    const m = cloneManifest(this.manifest);
    const id = layerId(m.nextLayer);
    const fresh = await Layer.create(this.ns, id, this.blockSize);
    await this.ns.sync();
    change(m);
    m.layers.push({ id, parent, sealed: false, contentId: null, parentContentId: parentLink(m, parent), created: new Date().toISOString() });
    m.active = id;
    m.nextLayer++;
    try {
      await this.manifestStore.commit(m);
    } catch (e) {
      await fresh.close();
      throw e;
    }
    this.layers.set(id, fresh);
    this.rebuildChain();
    return fresh;
  }

  /** Throw away the active layer's changes and continue from snapshot `name` (which is kept). */
  async revert(name: string): Promise<void> {
    this.assertWritable();
    this.assertNoJob('revert');
    this.assertNoObservers('revert');
    await this.exclusive(() => this.revertToLayer(this.findSnapshot(name).layer));
  }

  private async revertToLayer(parent: string): Promise<void> {
    const oldActive = this.manifest.active;
    await this.stackActiveLayer(parent, (m) => {
      m.layers = m.layers.filter((l) => l.id !== oldActive);
    });
    await this.dropLayerFiles(oldActive);
    await collectGarbage(this.mergeContext());
    this.rebuildChain();
  }

  // ---- staged changes (atomic imports) ----

  /**
   * Build a change of the live view and new snapshots off to the side, and publish all of it in
   * one manifest commit when `build` resolves. Inside `build`, write through the volume as usual
   * and take snapshots with `stage.snapshot` (the public `snapshot`, `revert`, `deleteSnapshot`
   * and block jobs are refused until the change is committed or dropped).
   *
   * The change starts from `from`: `'live'` stacks a new layer on the live view (what `build`
   * does not overwrite stays as it was); `'last-snapshot'` starts from what lies under the live
   * layer (the snapshot it grew from, or nothing), so the live layer's own changes are dropped
   * when the change is committed.
   *
   * If `build` throws, or `signal` fired by the time it resolves, every layer the change created
   * is deleted and the volume is exactly as before (snapshots, their content, the live view);
   * the error is rethrown. If the process dies first, the stored manifest never named those
   * layers: the next writable open removes their files. Reads during `build` see the change.
   * If writing the stored manifest itself fails, the change may or may not be stored (a failed
   * flush cannot tell): its layers are then kept, the error says so, and `onCommit` (called just
   * before that write) lets a caller word its messages. Not for volumes on a remote image
   * (`unsupported`).
   */
  async staged<T>(from: 'live' | 'last-snapshot', build: (stage: StagedChange) => Promise<T>, options: { signal?: AbortSignal; onCommit?: () => void } = {}): Promise<T> {
    this.assertWritable();
    this.assertNoJob('start a staged change');
    this.assertNoObservers('start a staged change');
    if (this.remoteBase) throw new StrataError('unsupported', 'This volume is built on a remote image; an import cannot be staged on it. Import into a local volume (`stratadisk create`) instead.');
    const committed = this.manifestStore as ManifestStore;
    const state: StagingState = { committed, layersBefore: new Set(this.layers.keys()), dropOnCommit: null };
    let result: T;
    try {
      await this.exclusive(async () => {
        const live = this.active;
        await live.flush();
        // Mark the layers this change will build (numbered from nextLayer up) as its own, so that
        // after a crash they are not taken for newer state that was lost (staging-mark.ts).
        await writeStagingMark(this.ns, committed.manifest.nextLayer);
        this.staging = state;
        this.manifestStore = new StagedManifest(committed);
        // An empty live layer holds nothing to keep: the change replaces it rather than sealing it.
        const replace = from === 'last-snapshot' || live.dataBlocks + live.zeroBlocks === 0;
        const parent = replace ? layerRecord(this.manifest, live.id).parent : live.id;
        await this.stackActiveLayer(parent, (m) => {
          if (replace) {
            m.layers = m.layers.filter((l) => l.id !== live.id);
          } else {
            // Sealed without a snapshot: after the commit it is merged with the change's layer.
            const rec = layerRecord(m, live.id);
            rec.sealed = true;
            rec.contentId = live.contentId();
          }
        });
        if (replace) state.dropOnCommit = live.id;
      });
      result = await build({
        snapshot: async (name) => {
          if (this.staging !== state) throw new StrataError('closed', 'This staged change is over; take snapshots with Volume.snapshot.');
          return this.takeSnapshot(name);
        },
      });
      if (options.signal?.aborted) throw new StrataError('aborted', 'Interrupted.');
      await this.exclusive(async () => {
        await this.active.flush();
        await this.ns.sync();
        if (options.signal?.aborted) throw new StrataError('aborted', 'Interrupted.');
        options.onCommit?.();
        state.committing = true;
        await committed.commit(this.manifest);
        this.manifestStore = committed;
        this.staging = null;
      });
    } catch (e) {
      if (this.staging !== state) throw e;
      await this.exclusive(() => this.dropStaged(state));
      if (!state.committing) throw e;
      throw new StrataError('io', `Storing the manifest that publishes the change failed (${e instanceof Error ? e.message : String(e)}); the volume holds either the state before the change or all of it: reopen it to see which.`, { cause: e });
    }
    // Committed: what follows only tidies up, and an open would do the same.
    await this.exclusive(async () => {
      try {
        await removeStagingMark(this.ns);
        if (state.dropOnCommit !== null) await this.dropLayerFiles(state.dropOnCommit);
        await collectGarbage(this.mergeContext());
      } catch (e) {
        const code = e instanceof StrataError ? e.code : 'io';
        throw new StrataError(code, `The change was committed, but tidying up after it failed (${e instanceof Error ? e.message : String(e)}); the next writable open of the volume finishes that.`, { cause: e });
      } finally {
        this.rebuildChain();
      }
    });
    return result;
  }

  /**
   * Undo a staged change in memory: the stored manifest is current again. The change's layers are
   * closed and, unless a failed commit may have stored a manifest naming them, deleted.
   */
  private async dropStaged(state: StagingState): Promise<void> {
    this.manifestStore = state.committed;
    this.staging = null;
    for (const [id, layer] of [...this.layers]) {
      if (state.layersBefore.has(id)) continue;
      if (state.committing) {
        this.layers.delete(id);
        await layer.close().catch(() => {});
      } else {
        // A file that cannot be deleted now is an orphan, which the next writable open removes.
        await this.dropLayerFiles(id).catch(() => {});
      }
    }
    // the change's layers are gone: clear its mark (if this fails, the next writable open does)
    if (!state.committing) await removeStagingMark(this.ns).catch(() => {});
    this.rebuildChain();
  }

  // ---- remote base (copy on read) ----

  /** The remote image this volume is built on, if any (provisioning figures, stream batches, refresh). */
  get remote(): RemoteBase | undefined {
    return this.remoteBase;
  }

  /** Drop every block the live volume changed so that it reads as its image again (fetched blocks are kept). */
  async reset(): Promise<void> {
    this.assertWritable();
    if (!this.remoteBase) throw new StrataError('unsupported', 'This volume has no remote image to reset to; revert to a snapshot instead.');
    this.assertNoObservers('reset');
    await this.remoteBase.reset();
  }

  private remoteContext(): RemoteContext {
    return {
      ns: this.ns,
      verify: this.verify,
      label: this.label,
      blockSize: this.blockSize,
      size: this.size,
      readOnly: this.readOnly,
      lock: { read: (fn) => this.shared(fn), write: (fn) => this.exclusive(fn) },
      layers: this.layers,
      manifest: () => this.manifest,
      commit: (m) => this.manifestStore.commit(m),
      dropLayerFiles: (id) => this.dropLayerFiles(id),
      liveChain: () => this.chain,
      rebuildChain: () => this.rebuildChain(),
      revertToLayer: (parent) => this.revertToLayer(parent),
    };
  }

  /** Delete snapshot `name`. Its layer is merged into its child (or dropped), so no other snapshot changes. */
  async deleteSnapshot(name: string): Promise<void> {
    this.assertWritable();
    this.assertNoJob('delete a snapshot');
    await this.exclusive(async () => {
      this.findSnapshot(name);
      // Snapshot operations are durability points, like creating one.
      await this.active.flush();
      const m = cloneManifest(this.manifest);
      m.snapshots = m.snapshots.filter((s) => s.name !== name);
      await this.manifestStore.commit(m);
      await collectGarbage(this.mergeContext());
      this.rebuildChain();
    });
  }

  private assertNoJob(what: string): void {
    if (this.staging !== null) throw new StrataError('locked', `Cannot ${what} while a staged change (an import) is being built on this volume; wait for it to finish or cancel it.`);
    if (this.job !== null) throw new StrataError('locked', `Cannot ${what} while the ${this.job} job runs on this volume; wait for it or cancel it.`);
  }

  /** Changes of the live view that are not writes would pass observers by: refused while any is attached. */
  private assertNoObservers(what: string): void {
    if (this.observers.any) throw new StrataError('locked', `Cannot ${what} while write observers (a mirror, a write log, replication) are attached to this volume; detach them first.`);
  }

  /** The running block job's kind, or null. */
  get runningJob(): string | null {
    return this.job;
  }

  /** Foreground reads, writes and flushes started so far (a job's own reads are not counted). */
  get foregroundOps(): number {
    return this.fgOps;
  }

  /**
   * For block jobs (src/jobs): hold the volume's structure for job `kind` while reads and writes
   * go on. Fails with `locked` when another job holds it. See {@link VolumeJobAccess}.
   */
  beginJob(kind: string): VolumeJobAccess {
    this.assertWritable();
    this.assertNoJob(`start a ${kind} job`);
    this.job = kind;
    let held = true;
    let mirrorHandle: ObserverHandle | null = null;
    const check = () => {
      if (!held) throw new StrataError('closed', `The ${kind} job no longer holds the volume.`);
      this.assertOpen();
    };
    return {
      ns: this.ns,
      blockSize: this.blockSize,
      view: this.viewReader(() => this.chain),
      foregroundOps: () => this.fgOps,
      manifest: () => this.manifest,
      layer: (id) => {
        check();
        const l = this.layers.get(id);
        if (!l) throw new StrataError('not-found', `Layer ${id} is no longer part of the volume.`);
        return l;
      },
      exclusive: (fn) => {
        check();
        return this.exclusive(fn);
      },
      flushActive: () => this.active.flush(),
      commit: async (m) => {
        check();
        await this.manifestStore.commit(m);
        this.rebuildChain();
      },
      dropLayerFiles: (id) => this.dropLayerFiles(id),
      retire: (reason) => {
        check();
        this.retired = reason;
      },
      setMirror: (mirror) => {
        check();
        void mirrorHandle?.detach();
        mirrorHandle = mirror ? this.observers.attach(mirrorObserver(mirror)) : null;
      },
      release: () => {
        if (!held) return;
        held = false;
        void mirrorHandle?.detach();
        mirrorHandle = null;
        this.job = null;
      },
    };
  }

  private mergeContext() {
    return {
      ns: this.ns,
      blockSize: this.blockSize,
      layers: this.layers,
      manifest: () => this.manifest,
      commit: (m: Manifest) => this.manifestStore.commit(m),
      dropLayerFiles: (id: string) => this.dropLayerFiles(id),
    };
  }

  /** Close a layer that the committed manifest no longer names, and delete its files. */
  private async dropLayerFiles(id: string): Promise<void> {
    const layer = this.layers.get(id);
    if (layer) {
      this.layers.delete(id);
      await layer.close();
    }
    const gen = layer?.mapGen ?? 0;
    for (const f of [dataName(id), mapName(id, gen)]) if (await this.ns.exists(f)) await this.ns.delete(f);
    await this.ns.sync();
  }

  /**
   * Delete layer files a crash left behind (see newer-state.ts for which ones are safe: a layer
   * created for a commit that never completed, a dropped layer, an old or uncommitted map log).
   */
  private async removeStale(names: readonly string[]): Promise<void> {
    for (const f of names) await this.ns.delete(f);
    if (names.length > 0) await this.ns.sync();
  }

  // ---- inspection ----

  /** Extents of the live volume (or of a byte range of it), like `qemu-img map --output=json`. */
  async map(offset?: number, length?: number): Promise<Extent[]> {
    this.assertOpen();
    const [from, to] = this.mapRange(offset, length);
    return this.shared(async () => extents(this.chain, this.size, from, to));
  }

  private mapRange(offset?: number, length?: number): [number, number] {
    if (offset === undefined && length === undefined) return [0, this.size];
    const from = offset ?? 0;
    const len = length ?? this.size - from;
    this.checkIo(from, len);
    return [from, from + len];
  }

  /** Layer ids of a view, top first: the live volume's chain, or snapshot `name`'s. */
  layerChain(name?: string): string[] {
    this.assertOpen();
    return chainIds(this.manifest, name === undefined ? this.manifest.active : this.findSnapshot(name).layer);
  }

  /**
   * One layer on its own, for exporting layer by layer: reads give its own blocks (known-zero
   * blocks and blocks it does not hold read as zeros) and `map()` marks what it holds as present
   * (data or zero) and everything else as absent. Fails with `not-found` once the layer is gone.
   */
  openLayer(id: string): VolumeReader {
    this.assertOpen();
    const chainNow = () => {
      const layer = this.layers.get(id);
      if (!layer) throw new StrataError('not-found', `Layer ${id} is no longer part of the volume.`);
      return new Chain([layer], this.blockSize, { verify: this.verify, label: this.label });
    };
    chainNow();
    return this.viewReader(chainNow);
  }

  /**
   * A layer of the volume as it is open, for transfers that read a chain layer by layer
   * (src/transfer/copy.ts). Read it only; its blocks change through the volume's own calls.
   */
  layer(id: string): Layer {
    this.assertOpen();
    const l = this.layers.get(id);
    if (!l) throw new StrataError('not-found', `Layer ${id} is not part of the volume.`);
    return l;
  }

  /** Verify every layer: map integrity (done at open) and every data block against its checksum. */
  async check(onProgress?: (done: number, total: number) => void, signal?: AbortSignal): Promise<CheckReport> {
    this.assertOpen();
    const report = await this.shared(() => checkVolume(this.manifest, this.layers, this.blockSize, onProgress, signal));
    if (this._newerState.length === 0) return report;
    const lost = this._newerState.map((e) => ({ layer: e.layer ?? e.file, code: 'corrupt' as const, message: e.message }));
    return { ...report, ok: false, problems: [...lost, ...report.problems] };
  }

  info(): VolumeInfo {
    this.assertOpen();
    const m = this.manifest;
    const active = this.active;
    let allocated = 0;
    let mem = 0;
    const layers = m.layers.map((r) => {
      const l = this.layers.get(r.id)!;
      allocated += l.data.size;
      mem += l.memoryBytes;
      return { id: r.id, parent: r.parent, sealed: r.sealed, contentId: r.sealed ? r.contentId : l.contentId(), dataBlocks: l.dataBlocks, zeroBlocks: l.zeroBlocks, dataBytes: l.data.size };
    });
    return {
      uuid: m.uuid,
      size: m.size,
      blockSize: m.blockSize,
      readOnly: this.readOnly,
      generation: this.manifestStore.generation,
      active: { layer: active.id, contentId: active.contentId(), dataBlocks: active.dataBlocks, zeroBlocks: active.zeroBlocks },
      chain: chainIds(m, m.active),
      layers,
      snapshots: this.snapshots(),
      allocatedBytes: allocated,
      metadataMemoryBytes: mem,
      ...(this.remoteBase ? { remote: this.remoteBase.provisioning() } : {}),
      ...(this._newerState.length > 0 ? { newerState: [...this._newerState] } : {}),
    };
  }

  /** Flush (when writable) and release every store. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.exclusive(async () => {
      if (!this.readOnly) {
        const event = this.observers.any ? ({ type: 'flush', seq: this.observers.nextSeq() } as const) : null;
        let ok = false;
        try {
          const sync = event && this.observers.deliverSync(event);
          await this.active.flush();
          if (sync) await sync;
          ok = true;
        } finally {
          if (event) this.observers.settle(event.seq, ok ? event : null);
        }
        await this.remoteBase?.flushCache();
      }
    });
    this.closed = true;
    await this.observers.detachAll();
    try {
      await this.remoteBase?.close();
      await this.closeLayers();
    } finally {
      await this.writerLock?.release();
    }
  }

  private async closeLayers(): Promise<void> {
    for (const l of this.layers.values()) await l.close();
    this.layers.clear();
  }
}

/** Open a layer the manifest names; a missing or damaged one also mentions a lost manifest slot. */
async function openLayer(ns: StoreNamespace, id: string, ms: ManifestStore, readOnly: boolean): Promise<Layer> {
  const gen = layerRecord(ms.manifest, id).mapGen ?? 0;
  try {
    return await Layer.open(ns, id, ms.manifest.blockSize, readOnly, gen);
  } catch (e) {
    throw withSlotEvidence(e, ms);
  }
}

/** A `corrupt` error, prefixed with what the manifest slots show (a lost newer generation explains most damage). */
function withSlotEvidence(e: unknown, ms: ManifestStore): unknown {
  const slots = slotEvidence(ms.generation, ms.slots);
  if (slots.length === 0 || !(e instanceof StrataError) || e.code !== 'corrupt') return e;
  return new StrataError('corrupt', `${slots.map((x) => x.message).join(' ')} ${e.message}`, { cause: e });
}

/** Has a manifest generation newer than `generation` been committed (by a writer running now)? */
async function newerCommitted(ns: StoreNamespace, generation: number): Promise<boolean> {
  return (await readManifestSlots(ns)).some((s) => s.state === 'valid' && s.generation! > generation);
}

/** Refusal of a writable open of a volume that lost newer state. */
function newerStateError(generation: number, evidence: readonly NewerState[]): StrataError {
  return new StrataError(
    'corrupt',
    `The volume held newer state than its manifest records (generation ${generation}); writing to it would lose that state for good. ` +
      evidence.map((e) => e.message).join(' ') +
      ' Nothing was changed. Run `stratadisk salvage DIR OUT` to export every snapshot, the live view and the newer layers; read-only opens (export, check) still work.',
  );
}

/** What `build` of {@link Volume.staged} gets. */
export interface StagedChange {
  /** Seal the live layer of the change as snapshot `name` (published with the change). */
  snapshot(name: string): Promise<SnapshotInfo>;
}

interface StagingState {
  committed: ManifestStore;
  /** layers open before the change: any other is the change's own */
  layersBefore: Set<string>;
  /** the live layer the change replaces, deleted once the change is committed */
  dropOnCommit: string | null;
  /** the stored manifest is being written: a failure leaves the outcome unknown */
  committing?: boolean;
}

function randomUuid(): string {
  return globalThis.crypto.randomUUID();
}

function noop(): void {}

/** A copied-up block's changed bytes, relative to the block at byte `start`. */
function partialWithin(partial: ByteRange, start: number, bs: number): { from: number; to: number } {
  const from = partial.offset - start;
  return { from, to: Math.min(bs, from + partial.length) };
}
