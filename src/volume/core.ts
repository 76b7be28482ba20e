import { StrataError } from '../errors.js';
import { layerId, type Manifest } from '../format/manifest.js';
import { checkRange, type NamespaceLock, type StoreNamespace } from '../store/store.js';
import { ALL_BLOCKS, RangeLock } from '../util/range-lock.js';
import { Chain, type ChainLayer } from './chain.js';
import { Layer, dataName, mapName } from './layer.js';
import { collectGarbage, type MergeContext } from './merge.js';
import { chainIds, cloneManifest } from './tree.js';
import type { NewerState } from './newer-state.js';
import type { RemoteBase, RemoteContext } from './remote-base.js';
import { WriteObservers } from './write-observer.js';
import type { VerifyMode } from './verify.js';
import type { ManifestHolder, StagingState } from './staged-manifest.js';
import { parentLink } from './links.js';

/**
 * The state of an open volume and the operations on it that everything else builds on: the
 * public `Volume` (volume.ts), the write path (write-path.ts), snapshots and staged changes
 * (snapshots.ts, staged.ts), block jobs (job-access.ts), merges (merge.ts, through
 * {@link MergeContext}) and the copy-on-read base (remote-base.ts, through {@link RemoteContext}).
 * Internal: not exported from the package.
 */
export class VolumeCore implements MergeContext, RemoteContext {
  /**
   * Reads hold their blocks shared, writes exclusively, structure changes (snapshot, revert,
   * merges, close) every block: writes of different blocks run at once, a read never sees half
   * of a write, and nothing overtakes an earlier request for the same blocks.
   */
  readonly locks = new RangeLock();
  /** writes started and not yet ended (a flush waits for those that started before it) */
  readonly inflight = new Set<Promise<void>>();
  /** every layer of the volume; each one's flush asks the write-ahead observers first (LayerSet) */
  readonly layers: Map<string, Layer> = new LayerSet(() =>
    // stopped: no flush of any layer (a job's, a merge's) may make what the log missed durable
    this.stopped ? Promise.reject(new StrataError(this.stopped.code, this.stopped.message, { cause: this.stopped })) : this.observers.commitAhead(),
  );
  chain!: Chain;
  closed = false;
  compactMapBytes = 1 << 20;
  writerLock: NamespaceLock | undefined;
  remoteBase: RemoteBase | undefined;
  /** the block job holding the volume's structure, if any (see beginJob) */
  job: string | null = null;
  /** write observers (write-observer.ts): block-job mirrors, a write log, replication */
  readonly observers = new WriteObservers();
  /** set when a mirror job moved the volume elsewhere: the reason writes are refused */
  retired: string | null = null;
  /**
   * Set by Volume.stopWrites (an observer that must see every write, such as the write log,
   * failed): every write and flush from now on fails with it, and close() does not flush, so
   * nothing the observer missed becomes durable.
   */
  stopped: StrataError | null = null;
  verify: VerifyMode = 'on';
  newerState: readonly NewerState[] = [];
  /** set while `Volume.staged` (staged.ts) builds a change that is not committed yet */
  staging: StagingState | null = null;
  /** foreground reads, writes and flushes started: block jobs yield while it moves (src/jobs/foreground.ts) */
  fgOps = 0;
  /** Blocks of scratch for copy-ups, reused (writes run at once, each takes its own): write-path.ts */
  copyUps: Uint8Array[] = [];
  /** scratch for the owners of written blocks: write-path.ts */
  owners = new Uint16Array(0);

  constructor(
    readonly ns: StoreNamespace,
    public manifestStore: ManifestHolder,
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

  /** Commit `m` as the volume's manifest (stored, or kept in memory while a change is staged). */
  commit(m: Manifest): Promise<void> {
    return this.manifestStore.commit(m);
  }

  /** The live chain (for the remote base: its last layer is that base). */
  liveChain(): Chain {
    return this.chain;
  }

  /** Make reads follow the manifest's active layer (after a commit that changed the tree). */
  rebuildChain(): void {
    this.chain = this.chainFor(this.manifest.active);
  }

  /** The read path from layer `top` down (the remote image last, if any). */
  chainFor(top: string): Chain {
    const layers: ChainLayer[] = chainIds(this.manifest, top).map((id) => this.layers.get(id)!);
    if (this.remoteBase) layers.push(this.remoteBase.layer);
    return new Chain(layers, this.blockSize, { verify: this.verify, label: this.label });
  }

  /** Names the volume in messages: where it is, else its uuid. */
  get label(): string {
    return `Volume ${this.ns.label ?? this.manifest.uuid}`;
  }

  // ---- locks ----

  /** Run `fn` holding every block exclusively: no read or write in flight, none starts. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.locks.run(ALL_BLOCKS[0], ALL_BLOCKS[1], true, fn);
  }

  /** Run `fn` holding every block shared: no write in flight, none starts. */
  shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.locks.run(ALL_BLOCKS[0], ALL_BLOCKS[1], false, fn);
  }

  // ---- checks ----

  assertOpen(): void {
    if (this.closed) throw new StrataError('closed', 'The volume is closed; open it again to use it.');
  }

  assertWritable(): void {
    this.assertOpen();
    if (this.retired !== null) throw new StrataError('closed', this.retired);
    this.assertNotStopped();
    if (this.readOnly) throw new StrataError('read-only', 'The volume is open read-only; open it without --read-only (or readOnly: false) to change it.');
  }

  /** Throws the reason of Volume.stopWrites, if it was called. */
  assertNotStopped(): void {
    const s = this.stopped;
    if (s) throw new StrataError(s.code, s.message, { cause: s });
  }

  checkIo(offset: number, length: number): void {
    checkRange(offset, length);
    if (offset + length > this.size) {
      throw new StrataError('out-of-range', `The range ${offset}+${length} is past the end of the volume (${this.size} bytes).`);
    }
  }

  /** The byte range [from, to) that `map(offset, length)` covers: all of the volume by default. */
  mapRange(offset?: number, length?: number): [number, number] {
    if (offset === undefined && length === undefined) return [0, this.size];
    const from = offset ?? 0;
    const len = length ?? this.size - from;
    this.checkIo(from, len);
    return [from, from + len];
  }

  /** Structure changes are refused while a block job or a staged change holds the volume. */
  assertNoJob(what: string): void {
    if (this.staging !== null) throw new StrataError('locked', `Cannot ${what} while a staged change (an import) is being built on this volume; wait for it to finish or cancel it.`);
    if (this.job !== null) throw new StrataError('locked', `Cannot ${what} while the ${this.job} job runs on this volume; wait for it or cancel it.`);
  }

  /** Changes of the live view that are not writes would pass observers by: refused while any is attached. */
  assertNoObservers(what: string): void {
    if (this.observers.any) throw new StrataError('locked', `Cannot ${what} while write observers (a mirror, a write log, replication) are attached to this volume; detach them first.`);
  }

  // ---- the read path (Volume.readInto, Volume.readIntoNow) ----

  /** See Volume.readInto: reads hold their blocks shared; no promise is added when they are free. */
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
    // granted at once (the common case): no extra promise (Chain.readInto is async: it never throws)
    if (typeof got === 'function') return this.chain.readInto(offset, target).finally(got);
    return got.then((release) => {
      // it waited: the volume may have been closed meanwhile (close holds every block)
      try {
        this.assertOpen();
      } catch (e) {
        release();
        return Promise.reject(e);
      }
      return this.chain.readInto(offset, target).finally(release);
    });
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

  // ---- structure changes (the caller holds every block: `exclusive`) ----

  /**
   * Create an empty layer on `parent`, commit a manifest making it the active layer (after
   * `change` edits the rest of that manifest), and switch to it. The layer's files are created
   * and synced before the commit; if the commit fails they are orphans, removed at next open.
   */
  async stackActiveLayer(parent: string | null, change: (m: Manifest) => void): Promise<Layer> {
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

  /** Give the live volume a new empty active layer on `parent`, dropping the old one. Caller holds every block. */
  async revertToLayer(parent: string): Promise<void> {
    const oldActive = this.manifest.active;
    await this.stackActiveLayer(parent, (m) => {
      m.layers = m.layers.filter((l) => l.id !== oldActive);
    });
    await this.dropLayerFiles(oldActive);
    await collectGarbage(this);
    this.rebuildChain();
  }

  /** Close a layer that the committed manifest no longer names, and delete its files. */
  async dropLayerFiles(id: string): Promise<void> {
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
  async removeStale(names: readonly string[]): Promise<void> {
    for (const f of names) await this.ns.delete(f);
    if (names.length > 0) await this.ns.sync();
  }

  // ---- closing ----

  async closeLayers(): Promise<void> {
    for (const l of this.layers.values()) await l.close();
    this.layers.clear();
  }

  /**
   * Flush the active layer as one flush event: numbered now, it waits for every write started
   * before it (unless the caller holds every block), reaches sync observers after them, and
   * async ones in number order.
   */
  async flushActiveObserved(holdingAll = false): Promise<void> {
    const event = this.observers.any ? ({ type: 'flush', seq: this.observers.nextSeq() } as const) : null;
    let ok = false;
    try {
      // a caller holding every block (close) has no write running, and the writes queued
      // behind it wait for it: waiting for them would never end
      if (!holdingAll && this.inflight.size > 0) await Promise.all(this.inflight);
      // close() ran meanwhile: it flushed every write before it, and the layers are gone
      if (this.closed) {
        ok = true;
        return;
      }
      this.assertNotStopped();
      const sync = event && this.observers.deliverSync(event);
      await this.active.flush();
      if (sync) await sync;
      ok = true;
    } finally {
      if (event) this.observers.settle(event.seq, ok ? event : null);
    }
  }

  /** Flush (when writable) and release every store. */
  close(): Promise<void> {
    // two calls share one close; a failed one (its flush failed) may be tried again
    this.closing ??= this.closeOnce().catch((e: unknown) => {
      this.closing = null;
      throw e;
    });
    return this.closing;
  }

  private closing: Promise<void> | null = null;

  private async closeOnce(): Promise<void> {
    if (this.closed) return;
    await this.exclusive(async () => {
      // a stopped volume keeps only what was durable when it stopped (see `stopped`)
      if (!this.readOnly && this.stopped === null) {
        await this.flushActiveObserved(true);
        await this.remoteBase?.flushCache();
      }
      // before the hold ends: a read or write queued behind it finds the volume closed
      this.closed = true;
    });
    await this.observers.detachAll();
    try {
      await this.remoteBase?.close();
      await this.closeLayers();
    } finally {
      await this.writerLock?.release();
    }
  }
}

/**
 * The layers of a volume. Every layer put here flushes through `hook` (Layer.commitHook): write-
 * ahead observers (the write log) make what they accepted durable after the layer fixed what it
 * will record and before it records it, so the log is never behind the volume after a crash.
 */
class LayerSet extends Map<string, Layer> {
  constructor(private readonly hook: () => Promise<void> | null) {
    super();
  }
  override set(id: string, layer: Layer): this {
    layer.commitHook = this.hook;
    return super.set(id, layer);
  }
}
