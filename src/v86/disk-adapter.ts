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
 * - reads are served from a cache of aligned units (the volume's block size, at least 64 KiB),
 *   misses are read in one call per run of missing units, with read-ahead growing on
 *   sequential access; unwritten extents overlay every read, so the guest always sees its own
 *   writes whatever is in flight.
 * - every `flushIntervalMs` (and at `flush()`) the volume's own durability barrier runs.
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
  /** Bytes of clean cached data kept (default 32 MiB). */
  cacheBytes?: number;
  /** Unwritten bytes at which the flusher starts at once instead of waiting for the timer (default 4 MiB). */
  flushBytes?: number;
  /** Unwritten bytes at which DMA completions wait for the flusher (default 64 MiB). */
  maxDirtyBytes?: number;
  /** Largest read-ahead on sequential reads (default 2 MiB). */
  readAheadBytes?: number;
  /** How long written data may stay in memory before it is written and made durable (default 1000 ms). */
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
}

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
  private timer: ReturnType<typeof setTimeout> | undefined;
  private needsBarrier = false;
  private waiters: (() => void)[] = [];
  private nextSequential = -1;
  private readAhead: number;
  private closed = false;
  private readonly s: V86DiskStats = {
    guestReads: 0, guestWrites: 0, cacheHits: 0, volumeReads: 0, volumeWrites: 0, volumeFlushes: 0,
    bytesRead: 0, bytesWritten: 0, dirtyBytes: 0, cachedBytes: 0,
  };

  constructor(private readonly volume: DiskVolume, options: V86DiskOptions = {}) {
    if (volume.size % SECTOR !== 0) {
      throw new StrataError('invalid-argument', `A v86 disk must be a whole number of 512-byte sectors; the volume is ${volume.size} bytes. Create it with a size that is a multiple of 512.`);
    }
    this.byteLength = volume.size;
    this.unit = Math.max(volume.blockSize, 64 * 1024);
    this.cacheLimit = Math.max(options.cacheBytes ?? 32 << 20, 2 * this.unit);
    this.flushBytes = options.flushBytes ?? 4 << 20;
    this.maxDirty = Math.max(options.maxDirtyBytes ?? 64 << 20, this.flushBytes);
    this.maxReadAhead = Math.max(options.readAheadBytes ?? 2 << 20, this.unit);
    this.readAhead = this.unit;
    this.interval = options.flushIntervalMs ?? 1000;
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
    const hit = this.fromCache(start, len);
    if (hit) {
      this.s.cacheHits++;
      this.nextSequential = start + len;
      cb(hit);
      return;
    }
    const sequential = start === this.nextSequential;
    this.readAhead = sequential ? Math.min(this.readAhead * 2, this.maxReadAhead) : this.unit;
    this.nextSequential = start + len;
    const answered: Promise<void> = this.readMiss(start, len, sequential ? this.readAhead : 0)
      .then(cb)
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
    else this.waiters.push(cb);
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

  /** Write everything the guest wrote to the volume and run the volume's durability barrier. */
  async flush(): Promise<void> {
    while (this.queued.length > 0 || this.flushing) {
      this.kick();
      await this.flushing;
    }
    if (this.needsBarrier) {
      this.needsBarrier = false;
      this.s.volumeFlushes++;
      await this.volume.flush();
    }
    if (this.lastError) throw this.lastError;
  }

  /** Resolves when every `get` has been answered and no write-out is running. */
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
    this.nextSequential = -1;
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

  /** Guest reads waiting for the volume, as promises that never reject (for `settle`). */
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

  /** Reads the units around [start, start+len) plus `ahead` bytes, caches them, answers the range. */
  private async readMiss(start: number, len: number, ahead: number): Promise<Uint8Array> {
    const u = this.unit;
    const from = Math.floor(start / u) * u;
    const to = Math.min(Math.ceil((start + len + ahead) / u) * u, this.byteLength);
    const pending: PendingRead = { overlay: [...this.writing, ...this.queued] };
    this.reads.add(pending);
    const p = this.volume.read(from, to - from);
    let data: Uint8Array;
    try {
      data = await p;
      this.s.volumeReads++;
      this.s.bytesRead += data.length;
    } catch (e) {
      this.fail(e);
      data = new Uint8Array(to - from);
    } finally {
      this.reads.delete(pending);

    }
    // The guest's writes that the volume may not have seen win over what it returned.
    for (const ext of pending.overlay) overlay(data, from, ext);
    for (let off = from; off < to; off += u) {
      const i = off / u;
      if (i === 0) this.unitZero = this.fullUnit(0, data.subarray(0, Math.min(u, data.length)));
      else if (!this.cache.has(i)) this.remember(i, this.fullUnit(off, data.subarray(off - from, Math.min(off - from + u, data.length))));
    }
    return data.slice(start - from, start - from + len);
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

  private schedule(): void {
    if (this.timer || this.closed) return;
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
      await Promise.all(runs.map((r) => this.volume.write(r.start, single.has(r) ? r.data.slice() : r.data)));
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
