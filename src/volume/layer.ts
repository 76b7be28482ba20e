import { StrataError } from '../errors.js';
import { ENTRY_SIZE, EntryBuffer, MapLog, SLOT_ABSENT, SLOT_ZERO } from '../format/map-log.js';
import { corrupt } from '../format/record.js';
import type { Store, StoreNamespace } from '../store/store.js';
import { SparseBitmap } from '../wasm/index.js';
import { ContentAccumulator, ItemBuffer, STATE_DATA, STATE_ZERO } from './content-id.js';
import { BitmapRuns } from './bitmap-runs.js';
import { PendingPut, type BlockBatch, type PutOptions } from './layer-writer.js';

export { SLOT_ABSENT, SLOT_ZERO };

/** Entries per page of the in-memory slot/hash maps: small pages keep sparse maps small. */
const PAGE_BITS = 9;
const PAGE = 1 << PAGE_BITS;
const MASK = PAGE - 1;

export function dataName(id: string): string {
  return `${id}.data`;
}
/** The map log of a layer; compaction writes generation n+1 beside generation n. */
export function mapName(id: string, gen = 0): string {
  return gen === 0 ? `${id}.map` : `${id}.${gen}.map`;
}

/** Compact a layer's map log when it is this many times larger than its live entries. */
const COMPACT_FACTOR = 4;

/**
 * One layer of a volume: a map from block index to a data slot in `<id>.data` (or to "known
 * zero"), kept as an append-only log in `<id>.map`. In memory it holds an ownership bitmap (in
 * WASM memory, for whole-range resolves), the slot of each owned block and the XXH3-128 of each
 * data block (for `check`, content IDs and transfer).
 *
 * Crash safety: a block is always written to a slot that no durable map entry references
 * (a new slot, or one allocated since the last flush), and the data store is flushed before
 * the map records that point into it. Slots freed by an overwrite become reusable only after
 * the flush that made the new mapping durable.
 */
export class Layer {
  readonly owned = new SparseBitmap();
  /**
   * Blocks whose stored data was read whole and matched its XXH3-128 since this layer was
   * opened (see src/volume/verify.ts): a partial read of such a block reads only what it needs.
   * A block's bit is cleared whenever its entry changes.
   */
  readonly verified = new SparseBitmap();
  readonly content = new ContentAccumulator();
  /** number of blocks with a data slot */
  dataBlocks = 0;
  /** number of blocks recorded as known-zero */
  zeroBlocks = 0;
  slotCount: number;

  private readonly slotPages = new Map<number, Int32Array>();
  private readonly hashPages = new Map<number, Uint8Array>();
  /** free slots, kept sorted descending so pop() yields the lowest */
  private free: number[] = [];
  private readonly fresh = new Set<number>();
  private pendingFree: number[] = [];
  private pending = new EntryBuffer();
  private readonly adds = new ItemBuffer();
  private readonly removes = new ItemBuffer();
  private disposed = false;
  /** data written since the last flush (so an idle flush costs no sync) */
  private dataDirty = false;

  private constructor(
    readonly id: string,
    readonly blockSize: number,
    readonly data: Store,
    public map: MapLog,
    public mapGen: number,
  ) {
    this.slotCount = Math.ceil(data.size / blockSize);
  }

  static async create(ns: StoreNamespace, id: string, blockSize: number): Promise<Layer> {
    const data = await ns.open(dataName(id), { create: true });
    let mapStore: Store | undefined;
    try {
      if (data.size !== 0) await data.truncate(0);
      await data.flush();
      mapStore = await ns.open(mapName(id), { create: true });
      const map = await MapLog.create(mapStore, { layer: id, blockSize });
      return new Layer(id, blockSize, data, map, 0);
    } catch (e) {
      // a full disk or a failing store: release the files rather than leave them to the GC
      await mapStore?.close().catch(() => {});
      await data.close().catch(() => {});
      throw e;
    }
  }

  static async open(ns: StoreNamespace, id: string, blockSize: number, readOnly: boolean, mapGen = 0): Promise<Layer> {
    let data: Store;
    let mapStore: Store;
    try {
      data = await ns.open(dataName(id), { readOnly });
      mapStore = await ns.open(mapName(id, mapGen), { readOnly });
    } catch (e) {
      if (e instanceof StrataError && e.code === 'not-found') throw corrupt(`Layer ${id}`, 'its files are missing');
      throw e;
    }
    let layer: Layer | null = null;
    const replay: { bytes: Uint8Array; count: number }[] = [];
    try {
      const map = await MapLog.open(mapStore, { layer: id, blockSize }, (packed, count) => replay.push({ bytes: packed, count }), `Layer ${id}`);
      layer = new Layer(id, blockSize, data, map, mapGen);
      for (const r of replay) layer.replay(r.bytes, r.count);
      layer.finishReplay();
    } catch (e) {
      // a damaged map: release the files (and the layer's bitmaps) rather than leave them to the GC
      if (layer) {
        layer.owned.dispose();
        layer.verified.dispose();
      }
      await data.close().catch(() => {});
      await mapStore.close().catch(() => {});
      throw e;
    }
    return layer;
  }

  private replay(packed: Uint8Array, count: number): void {
    const v = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
    for (let i = 0; i < count; i++) {
      const at = i * ENTRY_SIZE;
      const block = v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
      const slot = v.getInt32(at + 8, true);
      if (block >= 2 ** 32 || slot < SLOT_ZERO) throw corrupt(`Layer ${this.id}`, `entry ${i} has block ${block}, slot ${slot}`);
      if (slot >= 0 && slot >= this.slotCount) throw corrupt(`Layer ${this.id}`, `block ${block} points past the end of its data (slot ${slot})`);
      this.setRaw(block, slot, packed, at + 12);
    }
  }

  private finishReplay(): void {
    const used = new Uint8Array(this.slotCount);
    for (const [page, slots] of this.slotPages) {
      const hashes = this.hashPages.get(page)!;
      for (let i = 0; i < PAGE; i++) {
        const s = slots[i]!;
        if (s === SLOT_ABSENT) continue;
        const block = page * PAGE + i;
        if (s >= 0) {
          if (used[s]) throw corrupt(`Layer ${this.id}`, `slot ${s} is used by two blocks`);
          used[s] = 1;
          this.adds.push(block, STATE_DATA, hashes, i * 16);
        } else {
          this.adds.push(block, STATE_ZERO, null);
        }
      }
    }
    this.content.apply(this.adds, this.removes);
    this.adds.clear();
    for (let s = this.slotCount - 1; s >= 0; s--) if (!used[s]) this.free.push(s);
  }

  /**
   * Set an entry without logging it (replay and internal use). With `bits`, the bitmap changes
   * are gathered there (applied per run by `bits.apply`) instead of made one block at a time.
   */
  private setRaw(block: number, slot: number, hashSrc: Uint8Array | null, hashOffset: number, bits?: BitmapRuns): void {
    const page = block >>> PAGE_BITS;
    let slots = this.slotPages.get(page);
    let hashes = this.hashPages.get(page);
    if (!slots) {
      if (slot === SLOT_ABSENT) return;
      slots = new Int32Array(PAGE).fill(SLOT_ABSENT);
      hashes = new Uint8Array(PAGE * 16);
      this.slotPages.set(page, slots);
      this.hashPages.set(page, hashes);
    }
    const i = block & MASK;
    const old = slots[i]!;
    if (old >= 0 && this.verified.allocatedPages > 0) {
      if (bits) bits.unverify(block);
      else this.verified.clear(block, 1);
    }
    if (old >= 0) this.dataBlocks--;
    else if (old === SLOT_ZERO) this.zeroBlocks--;
    slots[i] = slot;
    const gained = old === SLOT_ABSENT && slot !== SLOT_ABSENT;
    const lost = old !== SLOT_ABSENT && slot === SLOT_ABSENT;
    if (slot >= 0) {
      this.dataBlocks++;
      if (hashSrc) hashes!.set(hashSrc.subarray(hashOffset, hashOffset + 16), i * 16);
    } else {
      if (slot === SLOT_ZERO) this.zeroBlocks++;
      hashes!.fill(0, i * 16, i * 16 + 16);
    }
    if (gained) {
      if (bits) bits.own(block);
      else this.owned.set(block, 1);
    } else if (lost) {
      if (bits) bits.disown(block);
      else this.owned.clear(block, 1);
    }
  }

  /** Slot of `block`: >= 0 data, SLOT_ZERO, or SLOT_ABSENT. */
  slot(block: number): number {
    const slots = this.slotPages.get(block >>> PAGE_BITS);
    return slots ? slots[block & MASK]! : SLOT_ABSENT;
  }

  /** The stored XXH3-128 of a data block (a view; copy it to keep it). */
  hash(block: number): Uint8Array | null {
    const hashes = this.hashPages.get(block >>> PAGE_BITS);
    if (!hashes) return null;
    const i = (block & MASK) * 16;
    return hashes.subarray(i, i + 16);
  }

  /**
   * Copy the stored XXH3-128 of blocks [first, first+count) to out[at..] (16 bytes each; zeros
   * for blocks without data). One copy per map page.
   */
  hashRun(first: number, count: number, out: Uint8Array, at = 0): void {
    for (let b = first; b < first + count; ) {
      const page = b >>> PAGE_BITS;
      const n = Math.min(first + count - b, PAGE - (b & MASK));
      const hashes = this.hashPages.get(page);
      const dst = at + (b - first) * 16;
      if (hashes) out.set(hashes.subarray((b & MASK) * 16, ((b & MASK) + n) * 16), dst);
      else out.fill(0, dst, dst + n * 16);
      b += n;
    }
  }

  /** Every (block, slot) this layer holds, in no particular order (for check, merge, map). */
  *entries(): Generator<[block: number, slot: number]> {
    for (const [page, slots] of this.slotPages) {
      for (let i = 0; i < PAGE; i++) {
        const s = slots[i]!;
        if (s !== SLOT_ABSENT) yield [page * PAGE + i, s];
      }
    }
  }

  /**
   * Is `slot` safe to overwrite in place (allocated since the last flush, so no durable entry
   * points at it, and no flush is about to make one durable)?
   */
  isFresh(slot: number): boolean {
    return !this.freshClosed && this.fresh.has(slot);
  }

  /** a flush is waiting for in-place overwrites to end: none may start */
  private freshClosed = false;
  /** puts overwriting fresh slots in place, not yet recorded or given back */
  private inPlacePuts = 0;
  private inPlaceIdle: (() => void) | null = null;

  inPlaceStarted(): void {
    this.inPlacePuts++;
  }

  inPlaceDone(): void {
    if (--this.inPlacePuts === 0 && this.inPlaceIdle) {
      const idle = this.inPlaceIdle;
      this.inPlaceIdle = null;
      idle();
    }
  }

  /** Allocate `n` slots: the lowest free ones first, then new ones appended to the data store. */
  allocate(n: number, out: number[]): void {
    for (let k = 0; k < n; k++) {
      const s = this.free.length > 0 ? this.free.pop()! : this.slotCount++;
      this.fresh.add(s);
      out.push(s);
    }
  }

  /**
   * Put whole blocks into this layer: slots, coalesced store writes, entries, content ID and
   * bitmaps, with every slot given back on failure (see layer-writer.ts). Returns the number of
   * blocks written in place at commit (the 'own' rule).
   */
  async putBlocks(batch: BlockBatch, options?: PutOptions): Promise<number> {
    const put = this.stageBlocks(batch, options);
    await put.written;
    return put.commit();
  }

  /** The two steps of putBlocks apart: data written now, entries recorded by `commit` (under the caller's lock). */
  stageBlocks(batch: BlockBatch, options?: PutOptions): PendingPut {
    return new PendingPut(this, batch, options);
  }

  /** Give back slots allocated for a write that failed before being mapped. */
  unallocate(slots: number[]): void {
    for (const s of slots) {
      this.fresh.delete(s);
      this.releaseSlot(s);
    }
  }

  private releaseSlot(s: number): void {
    // keep descending order: most releases are of recent (high) slots, so insertion is near the end
    let i = this.free.length;
    while (i > 0 && this.free[i - 1]! < s) i--;
    this.free.splice(i, 0, s);
  }

  /**
   * Record new entries for blocks (in memory now, in the log at the next flush). `hashes` holds
   * 16 bytes per block for data entries (at hashIndex[k] * 16).
   */
  setEntries(blocks: ArrayLike<number>, slots: ArrayLike<number>, count: number, hashes: Uint8Array | null, hashIndex?: ArrayLike<number>): void {
    const bits = this.bits;
    for (let k = 0; k < count; k++) {
      const block = blocks[k]!;
      const slot = slots[k]!;
      const old = this.slot(block);
      if (old === slot && slot === SLOT_ZERO) continue;
      if (old >= 0) {
        this.removes.push(block, STATE_DATA, this.hash(block), 0);
        if (old !== slot) {
          if (this.fresh.delete(old)) this.releaseSlot(old);
          else this.pendingFree.push(old);
        }
      } else if (old === SLOT_ZERO) {
        this.removes.push(block, STATE_ZERO, null);
      }
      const hOff = hashIndex ? hashIndex[k]! * 16 : k * 16;
      this.setRaw(block, slot, hashes, hOff, bits);
      if (slot >= 0) this.adds.push(block, STATE_DATA, hashes, hOff);
      else if (slot === SLOT_ZERO) this.adds.push(block, STATE_ZERO, null);
      this.pending.push(block, slot, slot >= 0 ? hashes : null, hOff);
    }
    bits.apply(this.owned, this.verified);
    this.content.apply(this.adds, this.removes);
    this.adds.clear();
    this.removes.clear();
  }

  /** bitmap changes of one setEntries call, applied a run at a time */
  private readonly bits = new BitmapRuns();

  get dirty(): boolean {
    return this.pending.count > 0;
  }

  /** Note that data was written to this layer's data store (by the volume or a merge). */
  markDataWritten(): void {
    this.dataDirty = true;
  }

  /** a background sync of the data store started by startWriteback, if one is running */
  private writeback: Promise<void> | null = null;

  /**
   * Start syncing the data store in the background (see Volume.startWriteback). It promises
   * nothing: a failure is ignored here and found again by the next flush, which syncs anyway.
   */
  startWriteback(): void {
    if (this.writeback || !this.dataDirty || this.disposed) return;
    const w = this.data.flush().then(
      () => {},
      () => {},
    );
    this.writeback = w;
    void w.then(() => {
      if (this.writeback === w) this.writeback = null;
    });
  }

  /** the flush or compaction last in line (flushes and compactions of the map log run one at a time) */
  private tail: Promise<void> = Promise.resolve();
  /** a flush in line that has not started yet: a caller arriving now shares it (group commit) */
  private nextFlush: Promise<void> | null = null;

  /**
   * Durability barrier for this layer: data first, then the map records that point into it.
   * It covers every entry recorded (setEntries) before it starts. It is a group commit: flushes
   * run one at a time, and every caller that arrives while one runs shares the next one (one
   * data sync and one map sync for all of them). Puts may go on while it runs: what they record
   * meanwhile waits for the next flush.
   */
  flush(): Promise<void> {
    if (this.nextFlush) return this.nextFlush;
    const p: Promise<void> = this.tail.then(noop, noop).then(() => {
      if (this.nextFlush === p) this.nextFlush = null;
      return this.flushOnce();
    });
    this.nextFlush = p;
    this.tail = p;
    return p;
  }

  /** Run `fn` (a compaction) when the flushes in line before it have ended, and before any flush asked for later. */
  serially<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(noop, noop).then(fn);
    this.tail = p.then(noop, noop);
    this.nextFlush = null;
    return p;
  }

  /**
   * Set by the volume (core.ts, LayerSet): asked, at each flush, to make the write log durable
   * before this layer records its entries; null (or a null result) when nothing must be.
   */
  commitHook: (() => Promise<void> | null) | null = null;

  private async flushOnce(): Promise<void> {
    if (this.disposed) return;
    if (this.writeback) await this.writeback;
    // A put overwriting a fresh slot in place must be recorded before the entries are taken: its
    // slot's durable entry would otherwise keep the old checksum over the new bytes. None starts
    // from now until they are taken.
    this.freshClosed = true;
    try {
      if (this.inPlacePuts > 0) await new Promise<void>((r) => (this.inPlaceIdle = r));
    } finally {
      this.freshClosed = false;
    }
    // What this flush makes durable: the entries recorded so far, whose data writes have all
    // landed (a put records its entries only then). From now on no slot is overwritten in place
    // until the next flush: a slot named by an entry being made durable must not change under it.
    const entries = this.pending;
    this.pending = new EntryBuffer();
    const freed = this.pendingFree;
    this.pendingFree = [];
    this.fresh.clear();
    const dirty = this.dataDirty;
    this.dataDirty = false;
    try {
      // the write log first (in parallel with our data sync): never behind what we record
      const ahead = this.commitHook?.() ?? null;
      if (ahead) await Promise.all([ahead, dirty ? this.data.flush() : null]);
      else if (dirty) await this.data.flush();
      if (entries.count > 0) {
        await this.map.append(entries);
        await this.map.flush();
      }
    } catch (e) {
      // nothing is known durable: the entries and freed slots wait for the next flush, in order
      entries.pushAll(this.pending);
      this.pending = entries;
      this.pendingFree = freed.concat(this.pendingFree);
      this.dataDirty = true;
      throw e;
    }
    for (const s of freed) this.releaseSlot(s);
  }

  /** Is the map log so much larger than the live entries that rewriting it pays off? */
  wantsCompaction(minBytes: number): boolean {
    const live = (this.dataBlocks + this.zeroBlocks) * ENTRY_SIZE;
    return this.pending.count === 0 && this.nextFlush === null && this.map.end > minBytes && this.map.end > COMPACT_FACTOR * (live + 1024);
  }

  /**
   * Write every live entry into a fresh map log of the next generation and flush it. The
   * caller commits a manifest naming the new generation, then calls `adoptCompacted`; until
   * then the old log stays authoritative, so a crash at any point loses nothing.
   */
  async writeCompacted(ns: StoreNamespace): Promise<MapLog> {
    const gen = this.mapGen + 1;
    const store = await ns.open(mapName(this.id, gen), { create: true });
    const log = await MapLog.create(store, { layer: this.id, blockSize: this.blockSize });
    const all = new EntryBuffer();
    for (const [page, slots] of this.slotPages) {
      const hashes = this.hashPages.get(page)!;
      for (let i = 0; i < PAGE; i++) {
        const s = slots[i]!;
        if (s !== SLOT_ABSENT) all.push(page * PAGE + i, s, s >= 0 ? hashes : null, i * 16);
      }
    }
    await log.append(all);
    await log.flush();
    return log;
  }

  /** Switch to a compacted log whose generation the manifest now names; returns the old store to delete. */
  adoptCompacted(log: MapLog): Store {
    const old = this.map.store;
    this.map = log;
    this.mapGen++;
    return old;
  }

  contentId(): string {
    return this.content.id(this.blockSize);
  }

  /** Bytes of metadata this layer holds in memory (maps, hashes, bitmap pages). */
  get memoryBytes(): number {
    return this.slotPages.size * PAGE * (4 + 16) + this.owned.allocatedPages * 8192 + this.free.length * 8;
  }

  async close(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    // a flush or compaction in line ends first (a revert may drop a layer a flush is syncing)
    await this.tail.then(noop, noop);
    if (this.writeback) await this.writeback;
    this.owned.dispose();
    this.verified.dispose();
    await this.data.close();
    await this.map.store.close();
  }
}

function noop(): void {}
