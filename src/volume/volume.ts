import { StrataError } from '../errors.js';
import type { Manifest, Requirement } from '../format/manifest.js';
import type { StoreNamespace } from '../store/store.js';
import type { BlockScan } from '../wasm/index.js';
import type { Layer } from './layer.js';
import { chainIds } from './tree.js';
import { extents, type Extent } from './map.js';
import { checkVolume, type CheckReport } from './check.js';
import type { NewerState } from './newer-state.js';
import { createRemoteVolumeFiles, type CreateRemoteVolumeOptions, type ProvisioningInfo, type RemoteBase } from './remote-base.js';
import { jobAccess, type VolumeJobAccess } from './job-access.js';
import type { ObserverHandle, WriteObserver } from './write-observer.js';
import type { VolumeCore } from './core.js';
import { createVolumeFiles, openVolumeCore, type CreateVolumeOptions, type OpenVolumeOptions } from './open.js';
import { flushVolume, writeData, writeRanges, writeZeroes, type WriteRange } from './write-path.js';
import { deleteSnapshot, layerChain, listSnapshots, openLayer, openSnapshot, revert, snapshot, type SnapshotInfo } from './snapshots.js';
import { staged, type StagedChange } from './staged.js';
import { listRequirements, setRequirement } from './requirements.js';
import type { VolumeReader } from './volume-reader.js';

export { DEFAULT_BLOCK_SIZE, type CreateVolumeOptions, type OpenVolumeOptions } from './open.js';
export type { WriteRange } from './write-path.js';
export type { SnapshotInfo } from './snapshots.js';
export type { StagedChange } from './staged.js';
export type { VolumeReader };

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

/**
 * A virtual disk: a tree of layers in one namespace of stores, read through the chain from the
 * active layer down, written by redirect-on-write into the active layer. Snapshots seal the
 * active layer and stack a new one (O(1)); deleting a snapshot merges its layer so that no other
 * snapshot changes.
 *
 * The state and the operations everything builds on are the volume's {@link VolumeCore}
 * (core.ts); this class is the public door to them. The write path is in write-path.ts,
 * snapshots in snapshots.ts, staged changes in staged.ts, create and open in open.ts.
 */
export class Volume implements VolumeReader {
  private constructor(private readonly core: VolumeCore) {}

  get ns(): StoreNamespace {
    return this.core.ns;
  }
  get readOnly(): boolean {
    return this.core.readOnly;
  }
  get manifest(): Manifest {
    return this.core.manifest;
  }
  get size(): number {
    return this.core.size;
  }
  get blockSize(): number {
    return this.core.blockSize;
  }
  get active(): Layer {
    return this.core.active;
  }

  /** Create a new, empty volume in `ns` (which must not already hold one). */
  static async create(ns: StoreNamespace, options: CreateVolumeOptions): Promise<Volume> {
    await createVolumeFiles(ns, options);
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
    return new Volume(await openVolumeCore(ns, options));
  }

  /**
   * Evidence that the volume once held newer state than the manifest generation it opened with
   * (see newer-state.ts): empty on a healthy volume. Only read-only opens get this far with
   * some; `check` reports each as a problem.
   */
  get newerState(): readonly NewerState[] {
    return this.core.newerState;
  }

  /** Names the volume in messages: where it is, else its uuid. */
  get label(): string {
    return this.core.label;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const target = new Uint8Array(length);
    await this.readInto(offset, target);
    return target;
  }

  readInto(offset: number, target: Uint8Array): Promise<void> {
    return this.core.readInto(offset, target);
  }

  /** See {@link VolumeReader.readIntoNow}. */
  readIntoNow(offset: number, target: Uint8Array): boolean {
    return this.core.readIntoNow(offset, target);
  }

  /** Write `data` at `offset`. Durable after the next `flush()`. */
  write(offset: number, data: Uint8Array): Promise<void> {
    return writeData(this.core, offset, data);
  }

  /**
   * Attach a write observer: from now on it sees every write and flush of the live view, in
   * order (see write-observer.ts for sync/async and failures). Detach it with the handle.
   * While any is attached, revert, reset and staged changes (which change the live view without
   * writes) are refused with `locked`.
   */
  observe(observer: WriteObserver): ObserverHandle {
    // a read-only volume has no writes: an async observer there only hears of the close (detached)
    if (observer.mode === 'async' && this.core.readOnly) this.core.assertOpen();
    else this.core.assertWritable();
    return this.core.observers.attach(observer);
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
  writeRanges(ranges: readonly WriteRange[], data: Uint8Array, scan?: BlockScan): Promise<void> {
    return writeRanges(this.core, ranges, data, scan);
  }

  /** Make a range read as zeros, storing no data (whole blocks become known-zero). */
  writeZeroes(offset: number, length: number): Promise<void> {
    return writeZeroes(this.core, offset, length);
  }

  /**
   * The durability barrier: every write that completed before this call (and every write
   * started before it, which it waits for) is durable when it resolves. Writes go on while it
   * runs. Flushes are group commits: all callers waiting at once share one data sync and one map
   * sync (Layer.flush).
   */
  flush(): Promise<void> {
    return flushVolume(this.core);
  }

  /**
   * Start writing data already written to the volume out to stable storage, in the background:
   * a later `flush()` then has less left to wait for. It changes nothing and promises nothing
   * (durability still comes only from `flush()`); bulk writers such as an import call it every
   * so often so that the device works while they go on reading and hashing.
   */
  startWriteback(): void {
    if (this.core.closed || this.core.readOnly) return;
    this.core.active.startWriteback();
  }

  /**
   * Stop accepting writes: every write and flush from now on (and every one in flight that has
   * not resolved) fails with `reason`, and close() does not flush, so only what was durable
   * before stays. For observers that must see every write (the write log) when they fail.
   */
  stopWrites(reason: StrataError): void {
    this.core.stopped ??= reason;
  }

  // ---- requirements (requirements.ts) ----

  /** Capabilities a writer must attach before writing (manifest `requires`), e.g. a write log. */
  requirements(): Requirement[] {
    return listRequirements(this.core);
  }

  /** Record (`where` a string) or drop (`where` null) a requirement: one manifest commit. src/journal/ uses it. */
  setRequirement(name: string, where: string | null, keeps?: string[], settings?: Record<string, string | number>): Promise<void> {
    return setRequirement(this.core, name, where, keeps, settings);
  }

  // ---- snapshots (snapshots.ts) ----

  /** Seal the active layer as snapshot `name` and stack a new active layer on it. O(1). */
  snapshot(name: string): Promise<SnapshotInfo> {
    return snapshot(this.core, name);
  }

  snapshots(): SnapshotInfo[] {
    return listSnapshots(this.core);
  }

  /** A read-only view of snapshot `name`. It follows the snapshot through merges; it fails with `not-found` once the snapshot is deleted. */
  openSnapshot(name: string): VolumeReader {
    return openSnapshot(this.core, name);
  }

  /** Throw away the active layer's changes and continue from snapshot `name` (which is kept). */
  revert(name: string): Promise<void> {
    return revert(this.core, name);
  }

  /** Delete snapshot `name`. Its layer is merged into its child (or dropped), so no other snapshot changes. */
  deleteSnapshot(name: string): Promise<void> {
    return deleteSnapshot(this.core, name);
  }

  /** Layer ids of a view, top first: the live volume's chain, or snapshot `name`'s. */
  layerChain(name?: string): string[] {
    return layerChain(this.core, name);
  }

  /**
   * One layer on its own, for exporting layer by layer: reads give its own blocks (known-zero
   * blocks and blocks it does not hold read as zeros) and `map()` marks what it holds as present
   * (data or zero) and everything else as absent. Fails with `not-found` once the layer is gone.
   */
  openLayer(id: string): VolumeReader {
    return openLayer(this.core, id);
  }

  /**
   * Build a change of the live view and new snapshots off to the side, and publish all of it in
   * one manifest commit when `build` resolves (see staged.ts for the whole contract). Inside
   * `build`, write through the volume as usual and take snapshots with `stage.snapshot`; the
   * public `snapshot`, `revert`, `deleteSnapshot` and block jobs are refused until the change is
   * committed or dropped. `'live'` starts from the live view, `'last-snapshot'` from what lies
   * under the live layer. If `build` throws or `signal` fires, the volume is exactly as before.
   * Not for volumes on a remote image (`unsupported`).
   */
  staged<T>(from: 'live' | 'last-snapshot', build: (stage: StagedChange) => Promise<T>, options: { signal?: AbortSignal; onCommit?: () => void } = {}): Promise<T> {
    return staged(this.core, from, build, options);
  }

  // ---- remote base (copy on read) ----

  /** The remote image this volume is built on, if any (provisioning figures, stream batches, refresh). */
  get remote(): RemoteBase | undefined {
    return this.core.remoteBase;
  }

  /** Drop every block the live volume changed so that it reads as its image again (fetched blocks are kept). */
  async reset(): Promise<void> {
    const core = this.core;
    core.assertWritable();
    if (!core.remoteBase) throw new StrataError('unsupported', 'This volume has no remote image to reset to; revert to a snapshot instead.');
    core.assertNoObservers('reset');
    await core.remoteBase.reset();
  }

  // ---- block jobs ----

  /** The running block job's kind, or null. */
  get runningJob(): string | null {
    return this.core.job;
  }

  /** Foreground reads, writes and flushes started so far (a job's own reads are not counted). */
  get foregroundOps(): number {
    return this.core.fgOps;
  }

  /**
   * For block jobs (src/jobs): hold the volume's structure for job `kind` while reads and writes
   * go on. Fails with `locked` when another job holds it. See {@link VolumeJobAccess}.
   */
  beginJob(kind: string): VolumeJobAccess {
    return jobAccess(this.core, kind);
  }

  // ---- inspection ----

  /** Extents of the live volume (or of a byte range of it), like `qemu-img map --output=json`. */
  async map(offset?: number, length?: number): Promise<Extent[]> {
    const core = this.core;
    core.assertOpen();
    const [from, to] = core.mapRange(offset, length);
    return core.shared(async () => extents(core.chain, core.size, from, to));
  }

  /**
   * A layer of the volume as it is open, for transfers that read a chain layer by layer
   * (src/transfer/copy.ts). Read it only; its blocks change through the volume's own calls.
   */
  layer(id: string): Layer {
    this.core.assertOpen();
    const l = this.core.layers.get(id);
    if (!l) throw new StrataError('not-found', `Layer ${id} is not part of the volume.`);
    return l;
  }

  /** Verify every layer: map integrity (done at open) and every data block against its checksum. */
  async check(onProgress?: (done: number, total: number) => void, signal?: AbortSignal): Promise<CheckReport> {
    const core = this.core;
    core.assertOpen();
    const report = await core.shared(() => checkVolume(core.manifest, core.layers, core.blockSize, onProgress, signal));
    if (core.newerState.length === 0) return report;
    const lost = core.newerState.map((e) => ({ layer: e.layer ?? e.file, code: 'corrupt' as const, message: e.message }));
    return { ...report, ok: false, problems: [...lost, ...report.problems] };
  }

  info(): VolumeInfo {
    const core = this.core;
    core.assertOpen();
    const m = core.manifest;
    const active = core.active;
    let allocated = 0;
    let mem = 0;
    const layers = m.layers.map((r) => {
      const l = core.layers.get(r.id)!;
      allocated += l.data.size;
      mem += l.memoryBytes;
      return { id: r.id, parent: r.parent, sealed: r.sealed, contentId: r.sealed ? r.contentId : l.contentId(), dataBlocks: l.dataBlocks, zeroBlocks: l.zeroBlocks, dataBytes: l.data.size };
    });
    return {
      uuid: m.uuid,
      size: m.size,
      blockSize: m.blockSize,
      readOnly: core.readOnly,
      generation: core.manifestStore.generation,
      active: { layer: active.id, contentId: active.contentId(), dataBlocks: active.dataBlocks, zeroBlocks: active.zeroBlocks },
      chain: chainIds(m, m.active),
      layers,
      snapshots: this.snapshots(),
      allocatedBytes: allocated,
      metadataMemoryBytes: mem,
      ...(core.remoteBase ? { remote: core.remoteBase.provisioning() } : {}),
      ...(core.newerState.length > 0 ? { newerState: [...core.newerState] } : {}),
    };
  }

  /** Flush (when writable) and release every store. */
  close(): Promise<void> {
    return this.core.close();
  }
}
