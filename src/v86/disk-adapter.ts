/**
 * A v86 hard disk backed by a stratadisk volume: the object v86 takes as `hda`/`hdb`.
 *
 * v86 calls (facts checked against v86 0.5.462): `byteLength`; `load()`, which must end in
 * `this.onload({})`; `get(start, len, cb)`, answered synchronously or later; `set(start, data,
 * cb)` (programmed I/O passes a view into a buffer v86 reuses and ignores `cb`, so the bytes are
 * copied at once; DMA passes a fresh array and raises the interrupt from `cb`); `get_and_cache`;
 * the synchronous `get_from_cache` (boot sector, geometry); and `get_state`/`set_state` from its
 * own save/restore (the disk is not part of v86's state: it is the volume).
 *
 * The volume sees large batches, never one call per 512-byte sector:
 * - writes land in a write-back buffer of extents, copied once, and are written to the volume in
 *   coalesced runs (one `write` per run of touching extents) by a background flusher; the guest's
 *   DMA completion waits only when too many bytes are dirty (back-pressure);
 * - reads are served from a cache of aligned units (the volume's block size, at least 64 KiB);
 *   misses are read in one call per run of missing units. Sequential streams (a few at once, so
 *   the guest's metadata reads between data reads do not break them) get read-ahead that
 *   doubles up to `readAheadBytes`, and is kept in flight: once a stream has used half of what
 *   was read ahead, the next window is requested while the guest still reads from the cache,
 *   so a sequential reader stops waiting for the worker at all. Unwritten extents overlay every
 *   read, so the guest always sees its own writes whatever is in flight.
 * - every `flushIntervalMs` (and at `flush()`) the volume's own durability barrier runs; a guest's
 *   FLUSH CACHE reaches `guestFlush()` through the hook in flush-barrier.ts, and its completion
 *   interrupt waits for that barrier.
 *
 * Works over an in-process `Volume` or a `RemoteVolume` in a worker: only `size`, `read`, `write`
 * and `flush` are used.
 */
import { StrataError } from '../errors.js';

/** What the adapter needs of a volume: `Volume` and `RemoteVolume` both fit. */
export interface DiskVolume {
  readonly size: number;
  readonly blockSize: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
  flush(): Promise<void>;
}

export interface V86DiskOptions {
  /** Bytes of clean cached data kept (default 48 MiB). */
  cacheBytes?: number;
  /** Unwritten bytes at which the flusher starts at once instead of waiting for the timer (default 4 MiB). */
  flushBytes?: number;
  /** Unwritten bytes at which DMA completions wait for the flusher (default 64 MiB). */
  maxDirtyBytes?: number;
  /** Largest read-ahead on sequential reads (default 8 MiB). */
  readAheadBytes?: number;
  /**
   * How long written data may stay in memory before it is written and made durable (default
   * 1000 ms). `Infinity`: no timer; data becomes durable only at a guest flush (flush-barrier.ts),
   * at `flush()`, or is written (not flushed) once `flushBytes` are dirty.
   */
  flushIntervalMs?: number;
  /** Called once for each failed volume call (the adapter keeps running; see `lastError`). */
  onError?: (e: unknown) => void;
}

/** Counters, for tests, benchmarks and the demo. */
export interface V86DiskStats {
  guestReads: number;
  guestWrites: number;
  cacheHits: number;
  volumeReads: number;
  volumeWrites: number;
  volumeFlushes: number;
  bytesRead: number;
  bytesWritten: number;
  dirtyBytes: number;
  cachedBytes: number;
  /** guest reads that had to wait for the volume */
  misses: number;
  /** milliseconds guest reads spent waiting for the volume (sum; the guest's disk is stalled meanwhile) */
  missWaitMs: number;
  /** volume reads started ahead of the guest (no guest read waiting) */
  prefetches: number;
  /** volume reads started (those answered are `volumeReads`) */
  volumeReadsStarted: number;
  /** milliseconds DMA writes waited for the write-back buffer to drain (back-pressure) */
  writeStallMs: number;
  /** milliseconds volume calls took (reads: summed, a write-out batch: its wall time, flushes); for a worker volume: worker time plus the round trip */
  volumeCallMs: number;
  /** the guest's FLUSH CACHE commands that waited for the volume (see flush-barrier.ts) */
  guestFlushes: number;
  /** milliseconds those flushes waited for the write-out and the volume's barrier (sum) */
  guestFlushWaitMs: number;
}

/** A sequential reader: where it will read next and how far the adapter has read for it. */
interface Stream {
  /** the end of its last read */
  next: number;
  /** bytes read (or being read) for it up to here */
  end: number;
  /** current read-ahead; 0 until it has read sequentially once */
  window: number;
}

/** Sequential streams tracked at once (least recently used dropped). */
const STREAMS = 4;

/** An unwritten piece of guest data (immutable once queued). */
interface Extent {
  start: number;
  data: Uint8Array;
}

/** A volume read in flight: the extents it must overlay when it lands. */
interface PendingRead {
  overlay: Extent[];
}

type V86Callback = (data: Uint8Array) => void;

const SECTOR = 512;

export class V86Disk {
  /** Read by v86. */
  readonly byteLength: number;
  /** Set by v86 before `load()`. */
  onload: ((e: object) => void) | undefined;
  onprogress: ((e: object) => void) | undefined;

  /** The first error a volume call gave, if any (the guest saw zeros for a failed read). */
  lastError: unknown;

  private readonly unit: number;
  private readonly cacheLimit: number;
  private readonly flushBytes: number;
  private readonly maxDirty: number;
  private readonly maxReadAhead: number;
  private readonly interval: number;
  private readonly onError: ((e: unknown) => void) | undefined;

  /** Clean (or patched) whole units by index, in LRU order (Map insertion order). */
  private readonly cache = new Map<number, Uint8Array>();
  /** Unit 0 stays: v86 reads the boot sector synchronously. */
  private unitZero: Uint8Array | undefined;
  /** Extents not yet handed to the volume, in arrival order. */
  private queued: Extent[] = [];
  private queuedBytes = 0;
  /** Extents handed to the volume whose write has not resolved. */
  private writing: Extent[] = [];
  private readonly reads = new Set<PendingRead>();
  private flushing: Promise<void> | undefined;
  /** The volume's durability barrier while it runs (a later one waits for it). */
  private barrier: Promise<void> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private needsBarrier = false;
  private waiters: (() => void)[] = [];
  private streams: Stream[] = [];
  /** Units being read from the volume, by index: settles (never rejects) when they are cached. */
  private readonly loading = new Map<number, Promise<void>>();
  /** Bumped by invalidate(): reads that started before it must not fill the cache. */
  private epoch = 0;
  private closed = false;
  private readonly s: V86DiskStats = {
    guestReads: 0, guestWrites: 0, cacheHits: 0, volumeReads: 0, volumeWrites: 0, volumeFlushes: 0,
    bytesRead: 0, bytesWritten: 0, dirtyBytes: 0, cachedBytes: 0, misses: 0, missWaitMs: 0, prefetches: 0, volumeReadsStarted: 0, writeStallMs: 0, volumeCallMs: 0,
    guestFlushes: 0, guestFlushWaitMs: 0,
  };

  constructor(private readonly volume: DiskVolume, options: V86DiskOptions = {}) {
    if (volume.size % SECTOR !== 0) {
      throw new StrataError('invalid-argument', `A v86 disk must be a whole number of 512-byte sectors; the volume is ${volume.size} bytes. Create it with a size that is a multiple of 512.`);
    }
    this.byteLength = volume.size;
    this.unit = Math.max(volume.blockSize, 64 * 1024);
    this.maxReadAhead = Math.max(options.readAheadBytes ?? 8 << 20, this.unit);
    // Room for two read-ahead windows per stream besides the working set.
    this.cacheLimit = Math.max(options.cacheBytes ?? 48 << 20, 2 * this.unit, 4 * this.maxReadAhead);
    this.flushBytes = options.flushBytes ?? 4 << 20;
    this.maxDirty = Math.max(options.maxDirtyBytes ?? 64 << 20, this.flushBytes);
    this.interval = options.flushIntervalMs ?? 1000;
    if (!(this.interval >= 0)) throw new StrataError('invalid-argument', `flushIntervalMs must be a number of milliseconds >= 0, or Infinity for no timer; got ${options.flushIntervalMs}.`);
    this.onError = options.onError;
  }

  // ---- what v86 calls ----

  /** Primes unit 0 (boot sector and partition table are read synchronously), then tells v86. */
  load(): void {
    void this.volume.read(0, Math.min(this.unit, this.byteLength)).then(
      (data) => {
        this.unitZero = this.fullUnit(0, data);
        this.onload?.({});
      },
      (e) => {
        this.fail(e);
        this.onload?.({});
      },
    );
  }

  get(start: number, len: number, cb: V86Callback): void {
    this.checkRange(start, len);
    this.s.guestReads++;
    const stream = this.track(start, len);
    const hit = this.fromCache(start, len);
    if (hit) {
      this.s.cacheHits++;
      this.prefetch(stream);
      cb(hit);
      return;
    }
    this.s.misses++;
    const t0 = performance.now();
    const answered: Promise<void> = this.readMiss(start, len, stream)
      .then((data) => {
        this.s.missWaitMs += performance.now() - t0;
        cb(data);
      })
      .catch((e) => this.fail(e))
      .finally(() => this.inFlight.delete(answered));
    this.inFlight.add(answered);
  }

  get_and_cache(start: number, len: number, cb: V86Callback): void {
    this.get(start, len, cb);
  }

  /** The bytes if every unit they touch is cached, else undefined (v86 then calls `get`). */
  get_from_cache(start: number, len: number): Uint8Array | undefined {
    return this.fromCache(start, len);
  }

  set(start: number, data: Uint8Array, cb?: () => void): void {
    this.checkRange(start, data.length);
    if (this.closed) throw new StrataError('closed', 'The v86 disk is closed; attach a new one to the emulator.');
    this.s.guestWrites++;
    const ext: Extent = { start, data: data.slice() };
    this.patchCache(ext);
    for (const r of this.reads) r.overlay.push(ext);
    this.queued.push(ext);
    this.queuedBytes += ext.data.length;
    this.needsBarrier = true;
    if (this.queuedBytes >= this.flushBytes) this.kick();
    else this.schedule();
    if (!cb) return;
    if (this.queuedBytes + this.writingBytes() < this.maxDirty) cb();
    else {
      const t0 = performance.now();
      this.waiters.push(() => {
        this.s.writeStallMs += performance.now() - t0;
        cb();
      });
    }
  }

  get_state(): unknown[] {
    // The disk's content is the volume, not part of v86's machine state.
    return [this.byteLength];
  }

  set_state(state: unknown[]): void {
    if (Array.isArray(state) && typeof state[0] === 'number' && state[0] !== this.byteLength) {
      this.fail(new StrataError('invalid-argument', `The machine state was saved with a ${state[0]}-byte disk, but this disk has ${this.byteLength} bytes.`));
    }
  }

  // ---- for the page ----

  get stats(): V86DiskStats {
    return { ...this.s, dirtyBytes: this.queuedBytes + this.writingBytes(), cachedBytes: this.cache.size * this.unit };
  }

  /**
   * Write everything the guest wrote to the volume and run the volume's durability barrier.
   * Resolves only when every byte the guest wrote before the call is durable: when nothing is
   * left to write but a barrier (the timer's) is still running, it waits for that barrier.
   */
  async flush(): Promise<void> {
    while (this.queued.length > 0 || this.flushing) {
      this.kick();
      await this.flushing;
    }
    if (this.needsBarrier) {
      this.needsBarrier = false;
      const run = this.volumeFlush(this.barrier);
      this.barrier = run;
      try {
        await run;
      } catch (e) {
        // Not durable: the next flush must try again, and a failed timer flush is not silent.
        this.needsBarrier = true;
        this.onError?.(e);
        throw e;
      } finally {
        if (this.barrier === run) this.barrier = undefined;
      }
    } else if (this.barrier) {
      await this.barrier;
    }
    if (this.lastError) throw this.lastError;
  }

  /**
   * The guest's FLUSH CACHE: `flush()`, then `done()` (with the error, if the data is not
   * durable), which raises the command's completion interrupt. `settle()` waits for `done`.
   */
  guestFlush(done: (error?: unknown) => void): void {
    this.s.guestFlushes++;
    const t0 = performance.now();
    const answered: Promise<void> = this.flush()
      .then(
        () => undefined,
        (e: unknown) => e ?? new StrataError('io', 'The v86 disk could not make the guest\'s writes durable.'),
      )
      .then((error) => {
        this.s.guestFlushWaitMs += performance.now() - t0;
        done(error);
      })
      .finally(() => this.inFlight.delete(answered));
    this.inFlight.add(answered);
  }

  /** Resolves when every `get` and guest flush has been answered and no write-out is running. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0 || this.flushing) {
      const waits: Promise<unknown>[] = [...this.inFlight];
      if (this.flushing) waits.push(this.flushing.catch(() => {}));
      await Promise.race(waits);
    }
  }

  /**
   * Forget every cached byte: the volume changed under the adapter (revert). Unwritten data must
   * be flushed first (`flush()`), or it is written over the new content.
   */
  invalidate(): void {
    if (this.queued.length > 0 || this.writing.length > 0) {
      throw new StrataError('invalid-argument', 'The v86 disk still holds unwritten data: call flush() before changing the volume under it.');
    }
    this.cache.clear();
    this.unitZero = undefined;
    this.streams = [];
    this.loading.clear();
    this.epoch++;
  }

  /** Reload unit 0 after `invalidate()` (v86 reads it synchronously at boot). */
  async prime(): Promise<void> {
    this.unitZero = this.fullUnit(0, await this.volume.read(0, Math.min(this.unit, this.byteLength)));
  }

  /** Flush, then stop the timer. The volume stays open (it is the caller's). */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  // ---- reads ----

  /** Guest reads and flushes waiting for the volume, as promises that never reject (for `settle`). */
  private readonly inFlight = new Set<Promise<void>>();

  private fromCache(start: number, len: number): Uint8Array | undefined {
    const u = this.unit;
    const first = Math.floor(start / u);
    const last = Math.floor((start + len - 1) / u);
    const out = new Uint8Array(len);
    for (let i = first; i <= last; i++) {
      const block = i === 0 && this.unitZero ? this.unitZero : this.cache.get(i);
      if (!block) return undefined;
      const from = Math.max(start, i * u);
      const to = Math.min(start + len, (i + 1) * u);
      out.set(block.subarray(from - i * u, to - i * u), from - start);
    }
    return out;
  }

  /**
   * The stream this read continues (it starts between the stream's last read and what was read
   * ahead for it), or a new one. A continued stream gets read-ahead.
   */
  private track(start: number, len: number): Stream {
    const i = this.streams.findIndex((t) => start >= t.next - len && start <= Math.max(t.end, t.next));
    let s: Stream;
    if (i >= 0) {
      s = this.streams[i]!;
      this.streams.splice(i, 1);
      s.next = Math.max(s.next, start + len);
      if (s.window === 0) s.window = 2 * this.unit;
    } else {
      s = { next: start + len, end: start + len, window: 0 };
      if (this.streams.length >= STREAMS) this.streams.pop();
    }
    this.streams.unshift(s);
    return s;
  }

  /** Keep a sequential stream's read-ahead in flight: read its next window once half is used. */
  private prefetch(s: Stream): void {
    if (s.window === 0 || s.end >= this.byteLength || s.end - s.next > s.window / 2) return;
    const u = this.unit;
    // The reader keeps up with the read-ahead: read further ahead next time.
    s.window = Math.min(s.window * 2, this.maxReadAhead);
    const from = Math.max(s.end, s.next);
    const to = Math.min(this.byteLength, from + s.window);
    s.end = to;
    const started = this.s.volumeReadsStarted;
    this.loadMissing(Math.floor(from / u), Math.ceil(to / u), 0, -1);
    this.s.prefetches += this.s.volumeReadsStarted - started;
  }

  /** Reads the units of [start, start+len) that are missing, plus the stream's read-ahead; answers the range. */
  private async readMiss(start: number, len: number, s: Stream): Promise<Uint8Array> {
    const u = this.unit;
    // A miss inside a sequential stream: the read-ahead did not keep up; double it.
    if (s.window > 0) s.window = Math.min(s.window * 2, this.maxReadAhead);
    const end = Math.min(this.byteLength, Math.max(start + len + s.window, s.window > 0 ? s.end : 0));
    const first = Math.floor(start / u);
    const last = Math.floor((start + len - 1) / u);
    s.end = Math.max(s.end, end);
    await Promise.all(this.loadMissing(first, Math.ceil(end / u), first, last));
    // Cached now, unless evicted meanwhile or the read failed: then read just the range.
    return this.fromCache(start, len) ?? this.readDirect(start, len);
  }

  /**
   * Start volume reads (one per run) for the units in [u0, u1) that are neither cached nor being
   * read; answers the promises that units [need0, need1] wait for.
   */
  private loadMissing(u0: number, u1: number, need0: number, need1: number): Promise<void>[] {
    const waits: Promise<void>[] = [];
    let run = -1;
    for (let i = u0; i <= u1; i++) {
      const missing = i < u1 && !this.isCached(i) && !this.loading.has(i);
      if (missing) {
        if (run < 0) run = i;
        continue;
      }
      if (run >= 0) {
        const p = this.loadUnits(run, i);
        if (run <= need1 && i - 1 >= need0) waits.push(p);
        run = -1;
      }
      const busy = i < u1 ? this.loading.get(i) : undefined;
      if (busy && i >= need0 && i <= need1) waits.push(busy);
    }
    return waits;
  }

  private isCached(i: number): boolean {
    return i === 0 ? this.unitZero !== undefined : this.cache.has(i);
  }

  /** One volume read of units [u0, u1) into the cache, overlaid with the guest's unwritten extents. */
  private loadUnits(u0: number, u1: number): Promise<void> {
    const u = this.unit;
    const from = u0 * u;
    const to = Math.min(u1 * u, this.byteLength);
    const epoch = this.epoch;
    const p: Promise<void> = this.readOverlaid(from, to - from)
      .then((data) => {
        if (epoch !== this.epoch) return;
        for (let off = from; off < to; off += u) {
          const i = off / u;
          const bytes = data.subarray(off - from, Math.min(off - from + u, data.length));
          if (i === 0) this.unitZero ??= this.fullUnit(0, bytes);
          else if (!this.cache.has(i)) this.remember(i, bytes.length === u ? bytes : this.fullUnit(off, bytes));
        }
      })
      .catch((e) => this.fail(e))
      .finally(() => {
        for (let i = u0; i < u1; i++) if (this.loading.get(i) === p) this.loading.delete(i);
        this.inFlight.delete(p);
      });
    for (let i = u0; i < u1; i++) this.loading.set(i, p);
    this.inFlight.add(p);
    this.s.volumeReadsStarted++;
    return p;
  }

  /** Bytes [from, from+length) of the volume with the guest's writes that it may not have seen on top. */
  private async readOverlaid(from: number, length: number): Promise<Uint8Array> {
    const pending: PendingRead = { overlay: [...this.writing, ...this.queued] };
    this.reads.add(pending);
    let data: Uint8Array;
    const t0 = performance.now();
    try {
      data = await this.volume.read(from, length);
      this.s.volumeCallMs += performance.now() - t0;
      this.s.volumeReads++;
      this.s.bytesRead += data.length;
    } finally {
      this.reads.delete(pending);
    }
    for (const ext of pending.overlay) overlay(data, from, ext);
    return data;
  }

  private async readDirect(start: number, len: number): Promise<Uint8Array> {
    try {
      return await this.readOverlaid(start, len);
    } catch (e) {
      this.fail(e);
      return new Uint8Array(len);
    }
  }

  /** A unit-sized copy (the last unit of the disk may be short: padded with zeros). */
  private fullUnit(_offset: number, bytes: Uint8Array): Uint8Array {
    const b = new Uint8Array(this.unit);
    b.set(bytes.subarray(0, this.unit));
    return b;
  }

  private remember(i: number, block: Uint8Array): void {
    this.cache.set(i, block);
    while (this.cache.size * this.unit > this.cacheLimit) {
      const oldest = this.cache.keys().next().value as number;
      this.cache.delete(oldest);
    }
  }

  private patchCache(ext: Extent): void {
    const u = this.unit;
    const end = ext.start + ext.data.length;
    for (let i = Math.floor(ext.start / u); i * u < end; i++) {
      const block = i === 0 ? this.unitZero : this.cache.get(i);
      if (block) overlay(block, i * u, ext);
    }
  }

  // ---- writes ----

  private writingBytes(): number {
    let n = 0;
    for (const e of this.writing) n += e.data.length;
    return n;
  }

  private async volumeFlush(after: Promise<void> | undefined): Promise<void> {
    await after?.catch(() => {});
    this.s.volumeFlushes++;
    const t0 = performance.now();
    try {
      await this.volume.flush();
    } finally {
      this.s.volumeCallMs += performance.now() - t0;
    }
  }

  private schedule(): void {
    if (this.timer || this.closed || this.interval === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch(() => {});
    }, this.interval);
  }

  /** Start a write-out of everything queued, unless one is running (it re-checks when done). */
  private kick(): void {
    if (this.flushing || this.queued.length === 0) return;
    this.flushing = this.writeOut().finally(() => {
      this.flushing = undefined;
      if (this.queuedBytes >= this.flushBytes) this.kick();
      else if (this.queued.length > 0) this.schedule();
      this.release();
    });
  }

  private async writeOut(): Promise<void> {
    const batch = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    this.writing = batch;
    try {
      const runs = coalesce(batch);
      this.s.volumeWrites += runs.length;
      for (const r of runs) this.s.bytesWritten += r.data.length;
      // A run that is one queued extent is copied: a worker volume takes the buffer by transfer,
      // and reads in flight may still need the extent's bytes for their overlay.
      const single = new Set(batch);
      const t0 = performance.now();
      try {
        await Promise.all(runs.map((r) => this.volume.write(r.start, single.has(r) ? r.data.slice() : r.data)));
      } finally {
        // Wall time of the batch (its runs overlap), not the sum of the runs.
        this.s.volumeCallMs += performance.now() - t0;
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.writing = [];
    }
  }

  private release(): void {
    if (this.queuedBytes + this.writingBytes() >= this.maxDirty) return;
    const w = this.waiters;
    this.waiters = [];
    for (const cb of w) cb();
  }

  private checkRange(start: number, len: number): void {
    if (!(start >= 0 && len >= 0 && start + len <= this.byteLength)) {
      throw new StrataError('out-of-range', `The guest accessed [${start}, ${start + len}) of a ${this.byteLength}-byte disk.`);
    }
  }

  private fail(e: unknown): void {
    this.lastError ??= e;
    this.onError?.(e);
  }
}

/** Copy the part of `ext` that falls inside `target` (which holds bytes from `targetStart`). */
function overlay(target: Uint8Array, targetStart: number, ext: Extent): void {
  const from = Math.max(targetStart, ext.start);
  const to = Math.min(targetStart + target.length, ext.start + ext.data.length);
  if (from >= to) return;
  target.set(ext.data.subarray(from - ext.start, to - ext.start), from - targetStart);
}

/**
 * Merge extents (later ones win where they overlap) into disjoint runs of touching bytes, one
 * buffer each, sorted by offset.
 */
export function coalesce(extents: readonly Extent[]): Extent[] {
  if (extents.length === 0) return [];
  // Spans of touching/overlapping extents, by sorted start.
  const order = extents.map((e, i) => i).sort((a, b) => extents[a]!.start - extents[b]!.start || a - b);
  const spans: { start: number; end: number; members: number[] }[] = [];
  for (const i of order) {
    const e = extents[i]!;
    const last = spans[spans.length - 1];
    if (last && e.start <= last.end) {
      last.end = Math.max(last.end, e.start + e.data.length);
      last.members.push(i);
    } else {
      spans.push({ start: e.start, end: e.start + e.data.length, members: [i] });
    }
  }
  return spans.map((s) => {
    if (s.members.length === 1) return extents[s.members[0]!]!;
    const data = new Uint8Array(s.end - s.start);
    // Arrival order, so the newest bytes are copied last.
    for (const i of s.members.sort((a, b) => a - b)) overlay(data, s.start, extents[i]!);
    return { start: s.start, data };
  });
}
