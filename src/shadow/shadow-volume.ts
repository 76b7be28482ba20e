/**
 * A volume whose data stays in place (a raw device, a file, an OPFS file, any Store) with
 * shadow copies: point-in-time copies kept by copy-on-write into differential areas.
 *
 * Creating a copy is O(1) (flush the volume, write a diff-area header, commit the catalog).
 * From then on, before a block is overwritten for the first time, its old content is appended
 * to the newest area (the "receiver"), flushed, and its bit published (shared bitmap and/or
 * messages); only then is the volume written. Reading copy i looks in area i, then each newer
 * area, then the volume. Deleting a copy only changes the catalog: its area stays while an
 * older live copy reads through it and is removed with the last such copy, so deletions in any
 * order never change what the others read; it receives no more blocks (the newest copy still
 * listed does), so its limit and policy no longer count. When the receiver's area is full (its
 * size limit, or `quota` from its store), its policy decides: 'fail' refuses the write (nothing
 * changes), 'drop' hands over to the next older area, which may be full too, and the copy is
 * marked lost once an older area took the blocks (or none is left).
 */
import { StrataError } from '../errors.js';
import type { NamespaceLock, Store, StoreNamespace } from '../store/store.js';
import { loadKernels, SparseBitmap } from '../wasm/index.js';
import { BlockIndex } from './block-index.js';
import { areaId, areaStoreName, CATALOG_FORMAT, CATALOG_VERSION, CatalogStore, MAX_AREAS, SHADOW_NAME, type AreaRecord, type OnFull } from './catalog.js';
import {
  AREA_FORMAT, AREA_HEADER_BYTES, AREA_VERSION, batchHeadBytes, checkShadowBlockSize, decodeAreaHeader, encodeAreaHeader, encodeSeal,
  MAX_RECORD_DATA, MAX_RUNS, newSalt, replayArea, sealBatch, verifyRecordData, type AreaHeader,
} from './diff-area.js';
import type { Area } from './area.js';
import { toEndpoint, type WriterMessage } from './protocol.js';
import { batchDue, PreserveBatch } from './preserve-batch.js';
import { lostError, ShadowCopyReader } from './read-path.js';
import { LocalView, ReaderHub } from './serve-readers.js';
import { createSharedBits, publishRuns, sharedMemoryAvailable } from './shared-bits.js';
import { VerifiedRecords } from './verified-records.js';

export interface ShadowVolumeOptions {
  /** Copy-on-write granularity for new shadow storage (512 B .. 1 MiB, power of two). Default 64 KiB. */
  blockSize?: number;
  /** Publish bits in shared memory for readers in other threads (default: when available). */
  sharedMemory?: boolean;
  /**
   * 'strict' (default): every copy survives a crash intact. A write that must preserve old
   * blocks joins a group commit: its old blocks are read at once and its data waits in memory
   * until the commit (every 256 writes or 16 MiB, `flush()`, a copy created or deleted,
   * `close()`) appends them as one diff-area record, flushes it, and only then writes the volume.
   * What a caller may rely on: a read of the live volume started after a write returned sees it
   * (copies keep the old bytes); `flush()` resolves only once every write acknowledged before it
   * is durable in the diff areas and the volume; a crash loses at most unflushed writes and never
   * shows a copy new bytes or the volume bytes nobody wrote. A failed commit keeps its writes (reads
   * still see them); its error (stable code: the store's, else 'io') goes to the write or flush that
   * ran it, and every later write and flush tries the commit again first and fails with it while
   * it still fails, so a flush that resolves means nothing acknowledged was dropped.
   * 'lazy': diff areas are flushed at `flush()` only (much faster writes); the catalog is marked
   * dirty while preservations are unflushed, and after a crash in that state every copy is
   * reported lost rather than risk a mixed read.
   */
  durability?: 'strict' | 'lazy';
}

export interface CreateShadowOptions {
  /** Default: the copy's id (S000001, ...). */
  name?: string;
  /** When the diff area is full: 'drop' the copy (writes go on) or 'fail' the write. Default 'drop'. */
  onFull?: OnFull;
  /** Size limit of the diff area in bytes (default none: only the store's quota limits it). */
  maxBytes?: number | null;
}

export interface ShadowInfo {
  id: string;
  name: string;
  created: string;
  onFull: OnFull;
  maxBytes: number | null;
  /** blocks preserved in this copy's own diff area */
  preservedBlocks: number;
  /** bytes of log in the diff area */
  diffBytes: number;
}

/**
 * The error of a failed group commit, with a stable code (the store's, or 'io'). Every write it
 * held was acknowledged already: they stay queued (reads still see them) and are written again
 * by the next commit, so nothing acknowledged is dropped; only a flush that resolves makes them durable.
 */
function commitFailed(e: unknown, writes: number): StrataError {
  const code = e instanceof StrataError ? e.code : 'io';
  const why = e instanceof Error ? e.message : String(e);
  return new StrataError(code, `Writing to the shadow-copied volume failed: ${why} The ${writes} write(s) waiting for this group commit are kept and tried again by the next write, flush or close; until that succeeds, writes and flushes fail with this error. Fix the cause (space, device), then flush again.`, { cause: e });
}

function full(area: Area, why: string): StrataError {
  return new StrataError('quota', `The diff area of shadow copy ${area.rec.name} is full (${why}).`);
}

/** The writer of an in-place volume with shadow copies. One per volume (it holds the shadow namespace's lock). */
export class ShadowVolume {
  readonly blockSize: number;
  readonly size: number;
  readonly blocks: number;
  private areas: Area[] = [];
  private receiver: Area | null = null;
  /** blocks preserved in the receiver or any newer area: a write of these preserves nothing */
  private covered: SparseBitmap;
  /** the passive readers served, and the shared control block */
  private readonly hub: ReaderHub;
  private nextSlot = 1;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly lazy: boolean;
  /** lazy mode: preservations not yet flushed (the catalog says dirty) */
  private dirty = false;
  /** strict mode: preserved blocks and volume writes waiting for one group commit */
  private readonly batch: PreserveBatch | null;
  /** the area the open batch's record goes to (the receiver when the batch opened) */
  private batchArea: Area | null = null;
  /** strict mode: the last group commit failed (its batch is kept and tried again before anything else) */
  private commitFailure: StrataError | null = null;

  private constructor(
    readonly volume: Store,
    readonly namespace: StoreNamespace,
    private readonly catalog: CatalogStore,
    private readonly lock: NamespaceLock | null,
    shared: boolean,
    durability: 'strict' | 'lazy',
  ) {
    this.blockSize = catalog.catalog.blockSize;
    this.size = catalog.catalog.volumeSize;
    this.blocks = Math.ceil(this.size / this.blockSize);
    this.covered = new SparseBitmap();
    this.hub = new ReaderHub(shared);
    this.lazy = durability === 'lazy';
    this.batch = this.lazy ? null : new PreserveBatch(this.blockSize, this.size);
  }

  /**
   * Open the shadow storage of `volume` kept in `namespace` (created on first use). Takes the
   * namespace's writer lock; the volume must keep the size it had when shadow storage was set up.
   * The ShadowVolume owns `volume` from now on and closes it with itself.
   */
  static async open(volume: Store, namespace: StoreNamespace, options: ShadowVolumeOptions = {}): Promise<ShadowVolume> {
    await loadKernels();
    if (volume.readOnly || namespace.readOnly) throw new StrataError('read-only', 'The shadow writer needs the volume and its shadow namespace writable; open a passive reader to only read.');
    const lock = namespace.lock ? await namespace.lock() : null;
    try {
      let catalog: CatalogStore;
      if (await CatalogStore.exists(namespace)) {
        catalog = await CatalogStore.open(namespace);
        if (catalog.catalog.volumeSize !== volume.size) {
          throw new StrataError('invalid-argument', `The volume is ${volume.size} bytes but its shadow copies were taken of ${catalog.catalog.volumeSize} bytes; a resized volume cannot keep them: delete the shadow directory to start over.`);
        }
      } else {
        const bs = options.blockSize ?? 65536;
        checkShadowBlockSize(bs);
        if (Math.ceil(volume.size / bs) > 2 ** 32) throw new StrataError('invalid-argument', `The volume needs more than 2^32 blocks of ${bs} bytes; use a larger block size.`);
        catalog = await CatalogStore.create(namespace, { format: CATALOG_FORMAT, version: CATALOG_VERSION, blockSize: bs, volumeSize: volume.size, nextId: 1, areas: [] });
      }
      const sv = new ShadowVolume(volume, namespace, catalog, lock, options.sharedMemory ?? sharedMemoryAvailable(), options.durability ?? 'strict');
      await sv.load();
      return sv;
    } catch (e) {
      await lock?.release();
      throw e;
    }
  }

  private async load(): Promise<void> {
    const c = this.catalog.catalog;
    const known = new Set(c.areas.map((a) => areaStoreName(a.id)));
    // Areas the catalog does not name: a creation that never committed (no records: remove),
    // or a deletion that committed before its files were removed (id below the counter).
    for (const name of await this.namespace.list()) {
      const m = /^S([0-9]{6,12})\.diff$/.exec(name);
      if (!m || known.has(name)) continue;
      if (Number(m[1]) >= c.nextId) {
        if ((await this.countRecords(name)) > 0) {
          throw new StrataError('corrupt', `Shadow diff area ${name} holds preserved blocks but the catalog does not list it: the catalog is damaged. Keep the directory and restore it from a copy.`);
        }
      }
      await this.namespace.delete(name);
    }
    for (const rec of c.areas) this.areas.push(await this.openArea(rec));
    this.pickReceiver();
    if (c.dirty) {
      // A lazy writer crashed with unflushed preservations: the volume may hold writes whose
      // old content never reached a diff area. No copy can be trusted, so all are reported lost.
      await this.setState(this.areas.filter((a) => a.rec.state !== 'deleted'), 'lost');
      await this.catalog.commit({ ...this.catalog.catalog, dirty: false });
    }
  }

  /** Preserved runs in an area the catalog does not list (0 when it is unreadable: never used). */
  private async countRecords(name: string): Promise<number> {
    const s = await this.namespace.open(name, { readOnly: true });
    try {
      const h = decodeAreaHeader(await s.read(0, Math.min(AREA_HEADER_BYTES, s.size)), name);
      let n = 0;
      await replayArea(s, h, () => n++);
      return n;
    } catch {
      return 0;
    } finally {
      await s.close();
    }
  }

  private async openArea(rec: AreaRecord): Promise<Area> {
    const name = areaStoreName(rec.id);
    if (!(await this.namespace.exists(name))) throw new StrataError('corrupt', `Shadow copy ${rec.name} lists diff area ${name}, which is missing. Delete the shadow copy, or restore the shadow directory.`);
    const store = await this.namespace.open(name);
    try {
      const header = decodeAreaHeader(await store.read(0, Math.min(AREA_HEADER_BYTES, store.size)), name);
      if (header.id !== rec.id || header.blockSize !== this.blockSize || header.volumeSize !== this.size) throw new StrataError('corrupt', `Shadow diff area ${name} belongs to another volume or copy.`);
      const bits = new SparseBitmap();
      const index = new BlockIndex();
      const records = new VerifiedRecords();
      const r = await replayArea(store, header, (s, n, off) => {
        bits.set(s, n);
        index.setRun(s, n, off, this.blockSize);
      }, undefined, this.catalog.catalog.dirty === true, (at, dataAt, end) => records.add(at, dataAt, end));
      if (!this.catalog.catalog.dirty && r.seq - 1 < (rec.records ?? 0)) {
        throw new StrataError('corrupt', `Shadow diff area ${name} ends after ${r.seq - 1} records but ${rec.records} were durable: it was truncated or damaged. Delete shadow copy ${rec.name} (and older ones reading through it).`);
      }
      return this.makeArea(rec, header, store, bits, index, records, r.end, r.seq);
    } catch (e) {
      await store.close();
      throw e;
    }
  }

  private makeArea(rec: AreaRecord, header: AreaHeader, store: Store, bits: SparseBitmap, index: BlockIndex, records: VerifiedRecords, end: number, seq: number): Area {
    let shared: SharedArrayBuffer | null = null;
    let words: Int32Array | null = null;
    if (this.hub.control) {
      shared = createSharedBits(this.blocks);
      words = new Int32Array(shared);
      for (let b = bits.nextSet(0); b >= 0; ) {
        const e = bits.nextClear(b);
        const stop = e < 0 ? this.blocks : e;
        publishRuns(words, Uint32Array.of(b, stop - b), 1);
        b = stop >= this.blocks ? -1 : bits.nextSet(stop);
      }
    }
    return { rec, header, store, bits, index, records, end, seq, slot: this.nextSlot++, shared, words };
  }

  /**
   * Areas that may receive preserved blocks, newest first: those of copies still listed (live)
   * whose area was not closed by a drop. A deleted copy's area never receives again (older copies
   * may still read through it): its size limit and policy no longer apply to anything.
   */
  private receivers(): Area[] {
    return this.areas.filter((a) => a.rec.state === 'live' && !a.rec.closed).reverse();
  }

  /** The receiver is the newest area that may receive; `covered` = union of it and every newer area. */
  private pickReceiver(): void {
    const receiver = this.receivers()[0] ?? null;
    this.receiver = receiver;
    this.covered.dispose();
    this.covered = new SparseBitmap();
    if (receiver) for (let i = this.areas.indexOf(receiver); i < this.areas.length; i++) this.covered.or(this.areas[i]!.bits, 0, Math.max(1, this.blocks));
  }

  /** Serialise every change (writes, creation, deletion): one writer at a time. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }

  private assertOpen(): void {
    if (this.closed) throw new StrataError('closed', 'This shadow volume is closed; open it again.');
  }

  // -------------------------------------------------------------------------------------------
  // the volume

  /**
   * Read the live volume (not a shadow copy): every write acknowledged before the read started
   * is in what it returns, whether it reached the volume or still waits for its group commit.
   */
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.assertOpen();
    // The writes queued now, taken before the volume is read: a commit may write them to the
    // volume (and forget them) while the read is under way, so they are laid over what it found.
    const pinned = this.batch?.pin();
    try {
      const out = await this.volume.read(offset, length);
      pinned?.overlay(offset, out);
      return out;
    } finally {
      pinned?.release();
    }
  }

  /** Write the live volume: preserve first-time blocks, publish, then write. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.assertOpen();
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > this.size) {
      throw new StrataError('out-of-range', `Write of ${data.length} bytes at ${offset} is outside the volume (${this.size} bytes).`);
    }
    if (data.length === 0) return;
    return this.exclusive(async () => {
      this.assertOpen();
      const bs = this.blockSize;
      const first = Math.floor(offset / bs);
      const count = Math.ceil((offset + data.length) / bs) - first;
      if (this.batch) return this.writeBatched(this.batch, offset, data, first, count);
      await this.preserve(first, count);
      await this.volume.write(offset, data);
    });
  }

  /**
   * Strict mode: the blocks to preserve join the open batch (their old content read now), the
   * write is queued behind it, and one group commit later (256 writes, 16 MiB of new or old
   * data, a flush) preserves them all with one record and one flush. A write of preserved blocks with no batch open goes straight to the volume.
   * A batch that would overflow a record is committed first; a write that cannot join a batch
   * (too large for one record, or the receiver is full or nearly so) commits the batch and
   * takes the unbatched path, where the full-area policies decide.
   */
  private async writeBatched(b: PreserveBatch, offset: number, data: Uint8Array, first: number, count: number): Promise<void> {
    // The last group commit failed: try it again first, and refuse this write (queueing nothing) while it still fails.
    if (this.commitFailure) await this.commitBatch();
    const area = this.receiver;
    const runs = area ? this.uncovered(area, first, count, b.blocks > 0 ? b.bits : undefined) : [];
    if (runs.length === 0) {
      if (b.empty) return this.volume.write(offset, data);
      b.queue(offset, data);
      if (batchDue(b)) await this.commitBatch();
      return;
    }
    const nRuns = runs.length / 2;
    let nBlocks = 0;
    for (let i = 1; i < runs.length; i += 2) nBlocks += runs[i]!;
    const bs = this.blockSize;
    const perRecord = Math.max(MAX_RECORD_DATA, bs);
    if (b.runCount + nRuns > MAX_RUNS || (b.blocks + nBlocks) * bs > perRecord) await this.commitBatch();
    if (nRuns > MAX_RUNS || nBlocks * bs > perRecord || !(await this.reserve(area!, b.recordBytes(nRuns, nBlocks)))) {
      await this.commitBatch();
      await this.preserve(first, count);
      await this.volume.write(offset, data);
      return;
    }
    this.batchArea = area;
    await b.take(this.volume, runs);
    b.queue(offset, data);
    if (b.blocks * bs >= perRecord || batchDue(b)) await this.commitBatch();
  }

  /** Can `area` take a record of `bytes` more? Grows its store ahead; false when full. */
  private async reserve(area: Area, bytes: number): Promise<boolean> {
    const max = area.rec.maxBytes;
    if (max !== null && area.end + bytes > max) return false;
    try {
      await this.growArea(area, area.end + bytes);
    } catch (e) {
      if (e instanceof StrataError && e.code === 'quota') return false;
      throw e;
    }
    return true;
  }

  /** Grow an area's store ahead in steps (readers elsewhere then rarely see a store shorter than a location). */
  private async growArea(area: Area, need: number): Promise<void> {
    const s = area.store;
    if (need <= s.size || !s.resizable) return;
    let next = Math.max(need, s.size + Math.max(1 << 20, Math.floor(s.size / 4)));
    next = Math.ceil(next / (1 << 20)) * (1 << 20);
    if (area.rec.maxBytes !== null) next = Math.min(next, area.rec.maxBytes);
    await s.truncate(next);
  }

  /**
   * The group commit: append the batch's old blocks to the receiver as one record, flush it
   * once, publish, then write the queued data to the volume in order. On a failure the rest of
   * the batch stays queued (the next write, flush or close tries again).
   */
  private async commitBatch(): Promise<void> {
    const b = this.batch;
    if (!b || b.empty) return;
    const writes = b.writes.length;
    try {
      if (b.blocks > 0) {
        const area = this.batchArea!;
        if (area !== this.receiver) await this.preserveApart(b);
        else {
          try {
            const { buf, runs, head } = b.recordBuffer();
            const n = runs.length / 2;
            sealBatch(buf, area.seq, area.header.salt, runs, n, b.blocks);
            await this.growArea(area, area.end + buf.length);
            await area.store.write(area.end, buf);
            await area.store.flush();
            this.published(area, runs, n, head, buf.length);
            b.preserved();
          } catch (e) {
            // The store ran out of space only now (reserve() grew the area, but a sparse file
            // allocates on write): the full-area policies decide, as for an unbatched write.
            if (!(e instanceof StrataError && e.code === 'quota')) throw e;
            await this.preserveApart(b);
          }
        }
      }
      // Writes that do not overlap go out together; a failure leaves them all queued (rewriting
      // the same bytes again is harmless) for the next commit. Every write of a wave is settled
      // before the next wave (or a retry) starts: a write of a failed wave still under way could
      // otherwise land after a later write to the same bytes.
      for (const wave of b.waves()) {
        const done = await Promise.allSettled(wave.map((w) => this.volume.write(w.offset, w.data)));
        const bad = done.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (bad) throw bad.reason;
      }
      b.written();
      this.commitFailure = null;
    } catch (e) {
      this.commitFailure = commitFailed(e, writes);
      throw this.commitFailure;
    }
  }

  /**
   * The batch's record cannot go to its area (full, or its copy deleted meanwhile): preserve its
   * blocks the unbatched way, where the full-area policies decide ('drop' hands them to older
   * areas). The volume still holds their old content: no queued write reached it, as the batch
   * still holds blocks. Blocks preserved before a failure here are skipped when it is retried.
   */
  private async preserveApart(b: PreserveBatch): Promise<void> {
    const runs = b.runs.slice();
    for (let i = 0; i < runs.length; i += 2) await this.preserve(runs[i]!, runs[i + 1]!);
    b.preserved();
  }

  async flush(): Promise<void> {
    this.assertOpen();
    return this.exclusive(() => this.flushAll());
  }

  /** Diff areas first, then the volume, then (lazy mode) the catalog is clean again. */
  private async flushAll(): Promise<void> {
    await this.commitBatch();
    if (this.dirty) for (const a of this.areas) await a.store.flush();
    await this.volume.flush();
    if (this.dirty) {
      await this.catalog.commit({ ...this.catalog.catalog, dirty: false, areas: this.withCounts(this.catalog.catalog.areas) });
      this.dirty = false;
    }
  }

  /**
   * Preserve the blocks of [start, start+count) that no area from the receiver on holds yet.
   * The receiver takes them; when its area is full (its limit, or 'quota' from its store) its
   * policy decides: 'drop' hands them to the next older receiving area, 'fail' refuses the write.
   * Full 'drop' copies are marked lost only once an older area took the blocks (or none is
   * left), so a refused write leaves every copy as it was.
   */
  private async preserve(start: number, count: number): Promise<void> {
    const full: Area[] = [];
    try {
      for (const area of this.receivers()) {
        const runs = this.uncovered(area, start, count);
        if (runs.length === 0) break;
        try {
          await this.append(area, runs);
          break;
        } catch (e) {
          if (!(e instanceof StrataError && e.code === 'quota')) throw e;
          if (area.rec.onFull === 'fail') {
            throw new StrataError('quota', `${e.message} Its policy is 'fail', so the write was refused and nothing changed. Free space, or delete shadow copy ${area.rec.name} (a deleted copy's area takes no more blocks), or create copies with a larger --max-size or --on-full drop.`, { cause: e });
          }
          full.push(area);
        }
      }
    } catch (e) {
      // An older area may have taken some blocks before the failure: `covered` is the receiver's again.
      if (full.length > 0) this.pickReceiver();
      throw e;
    }
    if (full.length > 0) await this.setState(full, 'lost');
  }

  /** Flat [start, count]* runs of blocks in [start, start+count) that neither `area` nor any newer area holds. */
  private uncovered(area: Area, start: number, count: number, pending?: SparseBitmap): number[] {
    let covered = this.covered;
    if (pending && covered.nextClear(start, start + count) >= 0) {
      covered = new SparseBitmap();
      covered.or(this.covered, start, count);
      covered.or(pending, start, count);
    }
    if (area !== this.receiver) {
      // Only while the receiver is full: add the areas from `area` up to the receiver.
      if (covered !== this.covered) covered.dispose();
      covered = new SparseBitmap();
      const from = this.areas.indexOf(area);
      for (let i = from; i < this.areas.length; i++) covered.or(this.areas[i]!.bits, start, count);
    }
    const out: number[] = [];
    const end = start + count;
    let b = covered.nextClear(start, end);
    while (b >= 0) {
      const s = covered.nextSet(b, end);
      const stop = s < 0 ? end : s;
      out.push(b, stop - b);
      b = stop >= end ? -1 : covered.nextClear(stop, end);
    }
    if (covered !== this.covered) covered.dispose();
    return out;
  }

  /**
   * Append the old content of `runs` to `area` (one store write + flush per record), then
   * publish. An area whose limit cannot hold all of it takes none of it.
   */
  private async append(area: Area, runs: number[]): Promise<void> {
    const bs = this.blockSize;
    const perRecord = Math.max(1, Math.floor(MAX_RECORD_DATA / bs));
    const records: { runs: Uint32Array; blocks: number }[] = [];
    let bytes = 0;
    let i = 0;
    while (i < runs.length) {
      // Take runs (splitting the last) up to the record limits.
      const chunk: number[] = [];
      let blocks = 0;
      while (i < runs.length && blocks < perRecord && chunk.length / 2 < MAX_RUNS) {
        const take = Math.min(runs[i + 1]!, perRecord - blocks);
        chunk.push(runs[i]!, take);
        blocks += take;
        if (take === runs[i + 1]) i += 2;
        else {
          runs[i] = runs[i]! + take;
          runs[i + 1] = runs[i + 1]! - take;
        }
      }
      records.push({ runs: Uint32Array.from(chunk), blocks });
      bytes += batchHeadBytes(chunk.length / 2) + blocks * bs;
    }
    const max = area.rec.maxBytes;
    if (max !== null && area.end + bytes > max) throw full(area, `limit ${max} bytes`);
    for (const r of records) await this.appendRecord(area, r.runs, r.blocks);
  }

  private async appendRecord(area: Area, runs: Uint32Array, blocks: number): Promise<void> {
    const bs = this.blockSize;
    const n = runs.length / 2;
    const head = batchHeadBytes(n);
    const total = head + blocks * bs;
    const max = area.rec.maxBytes;
    if (max !== null && area.end + total > max) throw full(area, `limit ${max} bytes`);
    const buf = new Uint8Array(total);
    const reads: Promise<void>[] = [];
    let at = head;
    for (let r = 0; r < n; r++) {
      const from = runs[2 * r]! * bs;
      const len = Math.min(runs[2 * r + 1]! * bs, this.size - from);
      reads.push(this.volume.readInto(from, buf.subarray(at, at + len)));
      at += runs[2 * r + 1]! * bs;
    }
    await Promise.all(reads);
    sealBatch(buf, area.seq, area.header.salt, runs, n, blocks);
    const s = area.store;
    await this.growArea(area, area.end + total);
    if (this.lazy && !this.dirty) {
      // From now until the next flush a crash may leave the volume ahead of its diff areas.
      await this.catalog.commit({ ...this.catalog.catalog, dirty: true, areas: this.withCounts(this.catalog.catalog.areas) });
      this.dirty = true;
    }
    await s.write(area.end, buf);
    if (!this.lazy) await s.flush();
    this.published(area, runs, n, head, total);
  }

  /** The record of `total` bytes at the area's end is durable: publish it (private bitmap, shared bits, messages); only then may the volume change. */
  private published(area: Area, runs: Uint32Array, n: number, head: number, total: number): void {
    const bs = this.blockSize;
    const pub = new Float64Array(3 * n);
    let off = area.end + head;
    for (let r = 0; r < n; r++) {
      const b = runs[2 * r]!, c = runs[2 * r + 1]!;
      area.bits.set(b, c);
      this.covered.set(b, c);
      area.index.setRun(b, c, off, bs);
      pub[3 * r] = b;
      pub[3 * r + 1] = c;
      pub[3 * r + 2] = off;
      off += c * bs;
    }
    area.records.add(area.end, area.end + head, area.end + total);
    area.end += total;
    area.seq++;
    const msg: WriterMessage = { t: 'pub', slot: area.slot, runs: pub };
    this.hub.post(msg);
    if (area.words) publishRuns(area.words, runs, n);
  }

  // -------------------------------------------------------------------------------------------
  // shadow copies

  /** Take a shadow copy: O(1) in the volume's size. */
  async createShadow(options: CreateShadowOptions = {}): Promise<ShadowInfo> {
    this.assertOpen();
    return this.exclusive(async () => {
      const c = this.catalog.catalog;
      const id = areaId(c.nextId);
      const name = options.name ?? id;
      if (!SHADOW_NAME.test(name)) throw new StrataError('invalid-argument', `Shadow copy name "${name}" is not allowed: use letters, digits and . _ + : - (up to 128).`);
      if (c.areas.some((a) => a.state === 'live' && a.name === name)) throw new StrataError('exists', `A shadow copy named ${name} exists; choose another name or delete it first.`);
      if (c.areas.length >= MAX_AREAS) throw new StrataError('quota', `At most ${MAX_AREAS} diff areas can exist; delete the oldest shadow copies first.`);
      const maxBytes = options.maxBytes ?? null;
      if (maxBytes !== null && (!Number.isSafeInteger(maxBytes) || maxBytes < AREA_HEADER_BYTES + 4096)) throw new StrataError('invalid-argument', `A diff area limit of ${maxBytes} bytes is too small (at least 8 KiB).`);
      const onFull = options.onFull ?? 'drop';
      if (onFull !== 'drop' && onFull !== 'fail') throw new StrataError('invalid-argument', `onFull must be 'drop' or 'fail', not ${String(onFull)}.`);
      // What the copy shows is what the volume holds now: make that durable first.
      await this.flushAll();
      const created = new Date().toISOString();
      const header: AreaHeader = { format: AREA_FORMAT, version: AREA_VERSION, id, salt: newSalt(), blockSize: this.blockSize, volumeSize: this.size, created };
      const storeName = areaStoreName(id);
      const store = await this.namespace.open(storeName, { create: true });
      try {
        await store.truncate(0);
        await store.write(0, encodeAreaHeader(header));
        await store.flush();
        await this.namespace.sync();
        const rec: AreaRecord = { id, name, created, state: 'live', onFull, maxBytes };
        await this.catalog.commit({ ...c, nextId: c.nextId + 1, areas: [...this.withCounts(c.areas), rec] });
        this.areas.push(this.makeArea(rec, header, store, new SparseBitmap(), new BlockIndex(), new VerifiedRecords(), AREA_HEADER_BYTES, 1));
      } catch (e) {
        await store.close().catch(() => {});
        await this.namespace.delete(storeName).catch(() => {});
        throw e;
      }
      this.pickReceiver();
      this.hub.broadcastChain(this.areas);
      return this.info(this.areas[this.areas.length - 1]!);
    });
  }

  /** Live shadow copies, oldest first. */
  list(): ShadowInfo[] {
    this.assertOpen();
    return this.areas.filter((a) => a.rec.state === 'live').map((a) => this.info(a));
  }

  /** Copies dropped because their diff area filled up (kept in the catalog until deleted). */
  lost(): ShadowInfo[] {
    return this.areas.filter((a) => a.rec.state === 'lost').map((a) => this.info(a));
  }

  private info(a: Area): ShadowInfo {
    const r = a.rec;
    // Blocks in the open batch count as preserved (they are, once the batch commits, before any of its writes reach the volume).
    const b = this.batch && !this.batch.empty && this.batch.blocks > 0 && this.batchArea === a ? this.batch : null;
    return { id: r.id, name: r.name, created: r.created, onFull: r.onFull, maxBytes: r.maxBytes, preservedBlocks: a.index.count + (b?.blocks ?? 0), diffBytes: a.end + (b?.recordBytes() ?? 0) };
  }

  /** Delete a shadow copy (live or lost). No other copy reads differently afterwards. */
  async deleteShadow(name: string): Promise<void> {
    this.assertOpen();
    return this.exclusive(async () => {
      const a = this.areas.find((x) => x.rec.name === name && x.rec.state !== 'deleted');
      if (!a) throw new StrataError('not-found', `No shadow copy named ${name}; \`stratadisk shadow list\` shows them.`);
      // The batch belongs to the receiver, which may change (or go) now: commit it first. If
      // the receiver is full with policy 'fail' and this is its copy, deleting it is the way out:
      // delete it, and the batch goes to the next receiver at the next commit.
      try {
        await this.commitBatch();
      } catch (e) {
        if (!(e instanceof StrataError && e.code === 'quota' && this.batchArea === a)) throw e;
      }
      await this.setState([a], 'deleted');
    });
  }

  /**
   * Change the state of areas, commit, drop areas no copy reads any more (all before the oldest
   * copy not deleted), pick the receiver again and tell the readers.
   */
  private async setState(areas: Area[], state: 'deleted' | 'lost'): Promise<void> {
    const c = this.catalog.catalog;
    const changed = new Set(areas.map((a) => a.rec.id));
    // A dropped area stops receiving for good (closed); a deleted copy whose area was dropped stays closed.
    const recs = c.areas.map((r): AreaRecord => {
      if (!changed.has(r.id)) return r;
      if (state === 'lost') return { ...r, state: r.state === 'deleted' ? 'deleted' : 'lost', closed: true };
      return { ...r, state: 'deleted' };
    });
    // A lost copy stays (reported lost, its area kept) until it is deleted.
    const first = recs.findIndex((r) => r.state !== 'deleted');
    const keep = first < 0 ? [] : recs.slice(first);
    const gone = this.areas.filter((a) => !keep.some((r) => r.id === a.rec.id));
    await this.catalog.commit({ ...c, areas: this.withCounts(keep) });
    for (const a of this.areas) a.rec = keep.find((r) => r.id === a.rec.id) ?? a.rec;
    this.areas = this.areas.filter((a) => !gone.includes(a));
    this.pickReceiver();
    this.hub.broadcastChain(this.areas);
    for (const a of gone) {
      a.bits.dispose();
      await a.store.close().catch(() => {});
      await this.namespace.delete(areaStoreName(a.rec.id)).catch(() => {});
    }
    if (gone.length > 0) await this.namespace.sync();
  }

  /** Catalog records with each open area's count of durable batch records. */
  private withCounts(recs: AreaRecord[]): AreaRecord[] {
    return recs.map((r) => {
      const a = this.areas.find((x) => x.rec.id === r.id);
      return a ? { ...r, records: a.seq - 1 } : r;
    });
  }

  /** Read a shadow copy in this process (same protocol as a passive reader, on the writer's own bitmaps). */
  openShadow(name: string, options: { recheck?: boolean } = {}): ShadowCopyReader {
    this.assertOpen();
    const a = this.areas.find((x) => x.rec.name === name && x.rec.state !== 'deleted');
    if (!a) throw new StrataError('not-found', `No shadow copy named ${name}; \`stratadisk shadow list\` shows them.`);
    if (a.rec.state === 'lost') throw lostError(name);
    return new ShadowCopyReader(new LocalView(this, a), name, async () => {}, options.recheck ?? true);
  }

  /** @internal for LocalView */
  chainFrom(a: Area): Area[] | null {
    const i = this.areas.indexOf(a);
    return i < 0 ? null : this.areas.slice(i);
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  // -------------------------------------------------------------------------------------------
  // passive readers elsewhere (the reader-serving side: serve-readers.ts)

  /**
   * Serve passive readers over `target` (a MessagePort, Worker, worker_threads port or child
   * process). The reader side is `ShadowReader.connect`. Returns a function that stops serving.
   */
  serve(target: Parameters<typeof toEndpoint>[0]): () => void {
    this.assertOpen();
    return this.hub.serve(toEndpoint(target), this);
  }

  /** @internal for the reader hub: the areas, oldest first */
  get chain(): readonly Area[] {
    return this.areas;
  }

  /** Seal every diff area (a clean end for the next open), flush, release the lock. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.exclusive(async () => {
      if (this.closed) return;
      this.closed = true;
      this.hub.closeAll();
      try {
        await this.flushAll();
        for (const a of this.areas) {
          await a.store.write(a.end, encodeSeal(a.seq, a.header.salt));
          await a.store.flush();
        }
        const c = this.catalog.catalog;
        if (c.areas.some((r) => (this.areas.find((a) => a.rec.id === r.id)?.seq ?? 1) - 1 !== (r.records ?? 0))) {
          await this.catalog.commit({ ...c, areas: this.withCounts(c.areas) });
        }
      } finally {
        for (const a of this.areas) {
          a.bits.dispose();
          await a.store.close().catch(() => {});
        }
        this.covered.dispose();
        this.batch?.dispose();
        await this.volume.close().catch(() => {});
        await this.lock?.release();
      }
    });
  }
}
