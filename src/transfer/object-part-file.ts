/**
 * One store of an ObjectNamespace (object-namespace.ts): a file kept as fixed-size part objects
 * (`volume/parts/<name>/<index>`) plus a record of its size (`volume/names/<name>`), in the
 * manner of s3backer. See README.md in this folder, "Volumes in an object store".
 *
 * - Reads fetch only the parts a range touches, several in flight; a read of part of a part
 *   fetches the whole part once and keeps it in the namespace's small cache.
 * - Writes go to per-part buffers (read-modify-write of a part that exists); full parts are
 *   uploaded behind the writer, the rest on `flush()`, and a writer waits when the buffered
 *   bytes pass a bound, so memory stays bounded. Each part put is atomic.
 * - `flush()`: upload every dirty part, delete parts that must read as zeros, put the size
 *   record, then delete parts past the end. A crash leaves each part old or new, and the old
 *   or the new size: writes since the last flush are lost in whole or in part, as the Store
 *   contract allows.
 * - Bytes of the file that no part object holds (absent parts, an object shorter than its part)
 *   read as zeros. Part objects past the size are garbage: they are never read, are deleted by
 *   the next flush of a writable open, and a grow over them forgets them first.
 */
import { StrataError } from '../errors.js';
import { BaseStore } from '../store/store.js';
import type { ObjectStore } from './object-store.js';
import type { PartCache } from './part-cache.js';

/** What a PartFile needs from its namespace. */
export interface PartHost {
  readonly objects: ObjectStore;
  /** run `fn` when one of the namespace's request slots is free */
  slot<T>(fn: () => Promise<T>): Promise<T>;
  readonly cache: PartCache;
  /** bytes of dirty and uploading parts one file may hold before its writer waits */
  readonly maxBufferBytes: number;
  /** throw `locked` when the namespace's writer lease lapsed (nothing more may be written) */
  checkWriter(): void;
  partKey(name: string, index: number): string;
  putRecord(name: string, size: number, partSize: number): Promise<void>;
  /** every part index under `name` */
  listParts(name: string): Promise<Set<number>>;
  deleteKeys(keys: string[]): Promise<void>;
}

interface Part {
  /** capacity grows to the part size as bytes are written; bytes at and past `len` are zero */
  buf: Uint8Array;
  len: number;
}

interface Upload {
  part: Part;
  done: Promise<void>;
  /** cut off by a shrink: its object lands past the end (or in a later hole) and must read as zeros */
  orphaned?: boolean;
}

let nextFileId = 0;
/** how far a sequential reader is read ahead */
const AHEAD_BYTES = 16 << 20;

/** The shared state of one name: every Store opened on it in one namespace object is a view of it. */
export class PartFile {
  readonly id = nextFileId++;
  size: number;
  private durableSize: number;
  /** part objects known to exist (listed at a writable open, then kept up to date); null: unknown */
  private exists: Set<number> | null = null;
  /** parts whose objects hold bytes that must read as zeros: deleted by the next flush */
  private readonly stale = new Set<number>();
  private readonly dirty = new Map<number, Part>();
  private readonly uploading = new Map<number, Upload>();
  private readonly loading = new Map<number, Promise<void>>();
  /** the last put of each part still in flight: puts of one key go one after the other */
  private readonly lastPut = new Map<number, Promise<void>>();
  /** parts fetched ahead of a sequential reader, in flight */
  private readonly prefetching = new Map<number, Promise<Uint8Array | null>>();
  /** where a sequential reader reads next */
  private nextRead = -1;
  /** uploads a shrink cut off, still in flight */
  private readonly orphans = new Set<Upload>();
  private buffered = 0;
  /** incremented by every change, so a fetch that raced one is not cached */
  private changes = 0;
  private serialTail: Promise<unknown> = Promise.resolve();
  refs = 0;
  /** deleted from the namespace while open: its views keep their bytes in memory, nothing is stored */
  detached = false;

  constructor(
    private readonly host: PartHost,
    readonly name: string,
    readonly partSize: number,
    size: number,
  ) {
    this.size = size;
    this.durableSize = size;
  }

  /** Learn which part objects exist (needed before the first change). */
  async listOnce(): Promise<void> {
    if (this.exists === null) this.exists = await this.host.listParts(this.name);
  }

  private cacheKey(i: number): string {
    return `${this.id}:${i}`;
  }

  /** bytes of part `i` inside the file */
  private validLen(i: number): number {
    return Math.max(0, Math.min(this.partSize, this.size - i * this.partSize));
  }

  private absent(i: number): boolean {
    return this.stale.has(i) || (this.exists !== null && !this.exists.has(i)) || this.detached;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serialTail.then(fn, fn);
    this.serialTail = run.catch(() => {});
    return run;
  }

  // ---- reads ----------------------------------------------------------------------------

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    const P = this.partSize;
    const sequential = offset === this.nextRead;
    this.nextRead = offset + target.length;
    const reads: Promise<void>[] = [];
    for (let pos = offset; pos < offset + target.length; ) {
      const i = Math.floor(pos / P);
      const end = Math.min(offset + target.length, (i + 1) * P);
      reads.push(this.readPart(i, pos - i * P, target.subarray(pos - offset, end - offset)));
      pos = end;
    }
    if (sequential) this.readAhead(Math.ceil(this.nextRead / P));
    await Promise.all(reads);
  }

  /** A reader that went on where it stopped gets the next parts fetched into the cache meanwhile. */
  private readAhead(from: number): void {
    const P = this.partSize;
    const ahead = Math.max(1, Math.min(16, Math.floor(AHEAD_BYTES / P)));
    for (let i = from; i < from + ahead && i * P < this.size; i++) {
      if (this.prefetching.has(i) || this.dirty.has(i) || this.uploading.has(i) || this.absent(i)) continue;
      if (this.host.cache.get(this.cacheKey(i))) continue;
      const changes = this.changes;
      const p = this.fetch(i, this.validLen(i)).then(
        (got) => {
          if (this.changes === changes) this.host.cache.set(this.cacheKey(i), got);
          return this.changes === changes ? got : null;
        },
        () => null, // the reader that needs it fetches it again and sees the error
      );
      this.prefetching.set(i, p);
      void p.then(() => this.prefetching.delete(i));
    }
  }

  private async readPart(i: number, at: number, out: Uint8Array): Promise<void> {
    const mem = this.dirty.get(i) ?? this.uploading.get(i)?.part;
    if (mem) return copyOut(mem.buf, mem.len, at, out);
    if (this.absent(i)) return void out.fill(0);
    const ahead = this.prefetching.get(i);
    if (ahead) {
      const got = await ahead;
      if (got) return copyOut(got, got.length, at, out);
      return this.readPart(i, at, out);
    }
    const cached = this.host.cache.get(this.cacheKey(i));
    if (cached) return copyOut(cached, cached.length, at, out);
    const valid = this.validLen(i);
    const changes = this.changes;
    if (at === 0 && out.length === valid) {
      const got = await this.fetch(i, valid);
      if (this.changes !== changes) return this.readPart(i, at, out);
      return copyOut(got, got.length, 0, out);
    }
    const got = await this.fetch(i, valid);
    if (this.changes !== changes) return this.readPart(i, at, out);
    this.host.cache.set(this.cacheKey(i), got);
    copyOut(got, got.length, at, out);
  }

  private async fetch(i: number, length: number): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array(0);
    const got = await this.host.slot(() => this.host.objects.get(this.host.partKey(this.name, i), { offset: 0, length }));
    // a missing object is a hole; a longer answer than asked is cut (never trusted to size anything)
    return got === null ? new Uint8Array(0) : got.length > length ? got.subarray(0, length) : got;
  }

  // ---- writes ---------------------------------------------------------------------------

  /** The dirty buffer of part `i`, loaded with its current bytes first. */
  private async dirtyPart(i: number): Promise<Part> {
    for (;;) {
      const d = this.dirty.get(i);
      if (d) return d;
      const l = this.loading.get(i);
      if (l) {
        await l;
        continue;
      }
      const up = this.uploading.get(i)?.part;
      if (up) return this.makeDirty(i, up.buf.slice(0, up.len), up.len);
      if (this.absent(i) || this.validLen(i) === 0) {
        this.stale.delete(i); // its object (if any) is replaced by the upload, or deleted past the end
        return this.makeDirty(i, new Uint8Array(0), 0);
      }
      const cached = this.host.cache.get(this.cacheKey(i));
      if (cached) return this.makeDirty(i, cached.slice(), Math.min(cached.length, this.validLen(i)));
      const load = this.fetch(i, this.validLen(i)).then((got) => {
        if (!this.dirty.has(i)) this.makeDirty(i, got.slice(), Math.min(got.length, this.validLen(i)));
      });
      this.loading.set(i, load);
      try {
        await load;
      } finally {
        this.loading.delete(i);
      }
    }
  }

  private makeDirty(i: number, buf: Uint8Array, len: number): Part {
    buf.fill(0, len);
    const p = { buf, len };
    this.dirty.set(i, p);
    this.buffered += buf.length;
    this.host.cache.drop(this.cacheKey(i));
    return p;
  }

  private grow(p: Part, need: number): void {
    if (need <= p.buf.length) return;
    const next = new Uint8Array(Math.min(this.partSize, Math.max(need, p.buf.length * 2, 4096)));
    next.set(p.buf.subarray(0, p.len));
    this.buffered += next.length - p.buf.length;
    p.buf = next;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const end = offset + data.length;
    if (end > this.size) await this.serial(() => this.growTo(end));
    this.changes++;
    const P = this.partSize;
    const full: number[] = [];
    const parts: Promise<void>[] = [];
    for (let pos = offset; pos < end; ) {
      const i = Math.floor(pos / P);
      const stop = Math.min(end, (i + 1) * P);
      const from = pos;
      parts.push(
        this.dirtyPart(i).then((p) => {
          const at = from - i * P;
          const upto = stop - i * P;
          this.grow(p, upto);
          p.buf.set(data.subarray(from - offset, stop - offset), at);
          if (upto > p.len) p.len = upto;
          this.changes++;
          if (p.len === P) full.push(i);
        }),
      );
      pos = stop;
    }
    await Promise.all(parts);
    // A part written to its end goes up behind the writer; the rest waits for flush or the bound.
    for (const i of full) if (this.dirty.has(i)) this.upload(i);
    await this.bound();
  }

  /** Make [size, end) read as zeros before the size grows over it. */
  private async growTo(end: number): Promise<void> {
    const P = this.partSize;
    const S = this.size;
    if (end <= S) return;
    await this.listOnce();
    const b = Math.floor(S / P);
    if (S % P !== 0 && (this.dirty.has(b) || this.uploading.has(b) || !this.absent(b))) {
      const p = await this.dirtyPart(b);
      p.buf.fill(0, S - b * P);
      p.len = Math.min(p.len, S - b * P);
    }
    for (const i of this.exists!) {
      if (i * P >= S && i * P < end) {
        this.stale.add(i);
        this.host.cache.drop(this.cacheKey(i));
      }
    }
    this.changes++;
    this.size = end;
  }

  async truncate(size: number): Promise<void> {
    await this.serial(async () => {
      if (size > this.size) return this.growTo(size);
      const P = this.partSize;
      this.changes++;
      this.size = size;
      for (const [i, p] of this.dirty) {
        if (i * P >= size) {
          this.dirty.delete(i);
          this.buffered -= p.buf.length;
        } else if ((i + 1) * P > size) {
          p.buf.fill(0, size - i * P);
          p.len = Math.min(p.len, size - i * P);
        }
      }
      for (const [i, u] of this.uploading) {
        if (i * P < size) continue;
        this.uploading.delete(i);
        u.orphaned = true;
        this.orphans.add(u);
      }
      // the part at the new end keeps stale bytes past it in its object: a grow zeroes them
      this.host.cache.dropFrom(`${this.id}:`, Math.floor(size / P));
    });
  }

  /** Start uploading part `i` (moves it from dirty to uploading). */
  private upload(i: number): Promise<void> {
    const part = this.dirty.get(i)!;
    this.dirty.delete(i);
    const len = Math.min(part.len, this.validLen(i));
    if (this.detached || (len === 0 && this.validLen(i) === 0)) {
      this.buffered -= part.buf.length;
      return Promise.resolve();
    }
    const entry: Upload = { part, done: Promise.resolve() };
    const before = this.lastPut.get(i);
    const put = (before ?? Promise.resolve()).then(() =>
      this.host.slot(async () => {
        this.host.checkWriter();
        return this.host.objects.put(this.host.partKey(this.name, i), part.buf.subarray(0, len));
      }),
    );
    const settled = put.then(
      () => {},
      () => {},
    );
    this.lastPut.set(i, settled);
    void settled.then(() => {
      if (this.lastPut.get(i) === settled) this.lastPut.delete(i);
    });
    entry.done = put
      .then(
        () => {
          this.exists?.add(i);
          this.buffered -= part.buf.length;
          if (this.uploading.get(i) === entry) {
            this.uploading.delete(i);
            this.stale.delete(i);
            if (!this.dirty.has(i)) this.host.cache.set(this.cacheKey(i), part.buf.subarray(0, len));
          } else if (entry.orphaned) {
            this.orphans.delete(entry);
            if (!this.dirty.has(i) && !this.uploading.has(i)) this.stale.add(i);
          }
        },
        (e: unknown) => {
          this.orphans.delete(entry);
          if (this.uploading.get(i) === entry) {
            this.uploading.delete(i);
            if (!this.dirty.has(i)) {
              this.dirty.set(i, part); // kept for the next flush
              return Promise.reject(e);
            }
          }
          this.buffered -= part.buf.length;
          return Promise.reject(e);
        },
      );
    this.uploading.set(i, entry);
    entry.done.catch(() => {}); // reported by the flush or the bound that waits on it
    return entry.done;
  }

  /** Wait while this file holds more than the bound; uploads what is dirty when nothing is in flight. */
  private async bound(): Promise<void> {
    while (this.buffered > this.host.maxBufferBytes) {
      if (this.uploading.size > 0) {
        // a failed upload went back to dirty: the next turn uploads it and reports its error
        await Promise.race([...this.uploading.values()].map((u) => u.done)).catch(() => {});
      } else {
        const i = this.dirty.keys().next().value as number;
        await this.upload(i);
      }
    }
  }

  async flush(): Promise<void> {
    if (this.detached) return;
    await this.serial(async () => {
      this.host.checkWriter();
      // Every dirty part up (several in flight), and every upload started before done.
      for (;;) {
        for (const i of [...this.dirty.keys()]) this.upload(i);
        if (this.uploading.size === 0) break;
        const results = await Promise.allSettled([...this.uploading.values()].map((u) => u.done));
        const failed = results.find((r) => r.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
      }
      await Promise.allSettled([...this.orphans].map((u) => u.done));
      const P = this.partSize;
      const S = this.size;
      for (const i of this.exists ?? []) if (i * P >= S) this.stale.add(i);
      const inside = [...this.stale].filter((i) => i * P < S);
      if (inside.length > 0) await this.forget(inside);
      if (S !== this.durableSize) {
        await this.host.putRecord(this.name, S, P);
        this.durableSize = S;
      }
      const past = [...this.stale];
      if (past.length > 0) await this.forget(past);
    });
  }

  private async forget(parts: number[]): Promise<void> {
    await this.host.deleteKeys(parts.map((i) => this.host.partKey(this.name, i)));
    for (const i of parts) {
      this.stale.delete(i);
      this.exists?.delete(i);
    }
  }

  /** For the last close of a writable view: everything up, then the file leaves memory. */
  hasChanges(): boolean {
    return this.dirty.size > 0 || this.uploading.size > 0 || this.orphans.size > 0 || this.stale.size > 0 || this.size !== this.durableSize;
  }
}

function copyOut(buf: Uint8Array, len: number, at: number, out: Uint8Array): void {
  const have = Math.max(0, Math.min(out.length, len - at));
  if (have > 0) out.set(buf.subarray(at, at + have));
  out.fill(0, Math.max(0, have));
}

/** A Store view of a PartFile. */
export class ObjectPartStore extends BaseStore {
  readonly resizable = true;

  constructor(
    private readonly file: PartFile,
    label: string,
    readOnly: boolean,
    private readonly onClose: (file: PartFile, writable: boolean) => Promise<void>,
  ) {
    super(label, readOnly);
  }

  get size(): number {
    return this.file.size;
  }

  protected _readInto(offset: number, target: Uint8Array): Promise<void> {
    return this.file.readInto(offset, target);
  }

  protected _write(offset: number, data: Uint8Array): Promise<void> {
    return this.file.write(offset, data);
  }

  protected _flush(): Promise<void> {
    return this.file.flush();
  }

  protected _truncate(size: number): Promise<void> {
    return this.file.truncate(size);
  }

  protected _close(): Promise<void> {
    return this.onClose(this.file, !this.readOnly);
  }
}

export function corruptRecord(where: string, why: string): StrataError {
  return new StrataError('corrupt', `The size record of ${where} is damaged (${why}); the store cannot be opened. Delete it, or copy the volume again.`);
}
