import { StrataError } from '../errors.js';

/**
 * Random-access bytes: the one thing every backend (memory, Node file, raw device, OPFS,
 * IndexedDB, HTTP) provides. Offsets are bytes; there is no block size at this level.
 *
 * Contract (checked by the shared conformance suite in test/node/store/conformance.ts):
 * - `size` is the current length in bytes, known synchronously once the store is open.
 * - `read`/`readInto` of a range past `size` throw `out-of-range`; nothing is read.
 * - `write` past the end grows the store (the gap reads as zeros) unless the store is
 *   fixed-size (a raw device), where it throws `out-of-range`.
 * - `flush` is the durability barrier: every write that completed before it is durable when it
 *   resolves. Writes not followed by a flush may be lost, in whole or in part, by a crash.
 * - A read-only store throws `read-only` on write/truncate; it never succeeds silently.
 * - After `close`, every call throws `closed`.
 */
export interface Store {
  readonly size: number;
  readonly readOnly: boolean;
  /** false for stores whose size is set from outside (raw block devices, fixed HTTP objects). */
  readonly resizable: boolean;
  read(offset: number, length: number): Promise<Uint8Array>;
  readInto(offset: number, target: Uint8Array): Promise<void>;
  /**
   * Optional fast path for hot read loops: read synchronously when the backend can do it
   * cheaply (a local file in `'sync'` I/O mode, memory) and return true; return false, having
   * read nothing, to send the caller to `readInto`. Same checks and errors as `readInto`.
   */
  readIntoNow?(offset: number, target: Uint8Array): boolean;
  write(offset: number, data: Uint8Array): Promise<void>;
  flush(): Promise<void>;
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Create the store (empty) if it does not exist. Default false: a missing store is `not-found`. */
  create?: boolean;
  readOnly?: boolean;
}

/**
 * A flat namespace of named stores: a directory, an OPFS directory, an IndexedDB database, a Map.
 * A volume lives in one namespace. Names match NAME_PATTERN.
 */
export interface StoreNamespace {
  readonly readOnly: boolean;
  /** Where the namespace is, for messages (a directory, an OPFS path, a database name). */
  readonly label?: string;
  open(name: string, options?: OpenOptions): Promise<Store>;
  exists(name: string): Promise<boolean>;
  list(): Promise<string[]>;
  delete(name: string): Promise<void>;
  /** Make creations/deletions of names durable (fsync of a directory). No-op where meaningless. */
  sync(): Promise<void>;
  /**
   * Take the namespace's writer lock, or throw `locked` when another writer holds it. A volume
   * opened for writing holds it until closed, so two writers never interleave their records.
   * Optional: a namespace without it offers no protection between writers.
   */
  lock?(): Promise<NamespaceLock>;
}

export interface NamespaceLock {
  release(): Promise<void>;
}

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new StrataError('invalid-argument', `Store name "${name}" is not allowed: use 1-128 letters, digits, '.', '_' or '-'.`);
  }
}

/** Largest offset/length we accept: 2^53 - 1 bytes is far beyond any device, and exact in a JS number. */
export const MAX_BYTES = Number.MAX_SAFE_INTEGER;

export function checkRange(offset: number, length: number, what = 'range'): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > MAX_BYTES) {
    throw new StrataError('invalid-argument', `Invalid ${what}: offset ${offset}, length ${length}. Offsets and lengths are non-negative integers.`);
  }
}

/**
 * Base class that owns the lifecycle and the argument checks, so a backend implements only
 * `_readInto`, `_write`, `_flush`, `_truncate`, `_close` (idea from random-access-storage).
 */
export abstract class BaseStore implements Store {
  abstract readonly size: number;
  readonly readOnly: boolean;
  abstract readonly resizable: boolean;
  protected closed = false;
  protected readonly label: string;

  constructor(label: string, readOnly: boolean) {
    this.label = label;
    this.readOnly = readOnly;
  }

  protected abstract _readInto(offset: number, target: Uint8Array): Promise<void>;
  protected abstract _write(offset: number, data: Uint8Array): Promise<void>;
  protected abstract _flush(): Promise<void>;
  protected abstract _truncate(size: number): Promise<void>;
  protected abstract _close(): Promise<void>;

  protected assertOpen(): void {
    if (this.closed) throw new StrataError('closed', `Store ${this.label} is closed; open it again to use it.`);
  }

  protected assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) throw new StrataError('read-only', `Store ${this.label} is open read-only; open it writable to change it.`);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    // Check before allocating: a length from untrusted input must never size a buffer unchecked.
    this.assertOpen();
    checkRange(offset, length, 'read');
    if (offset + length > this.size) {
      throw new StrataError('out-of-range', `Read of ${length} bytes at ${offset} is past the end of ${this.label} (${this.size} bytes).`);
    }
    const target = new Uint8Array(length);
    await this.readInto(offset, target);
    return target;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.checkRead(offset, target.length);
    if (target.length === 0) return;
    await this._readInto(offset, target);
  }

  /** The checks of readInto (open, a valid range within the store). */
  protected checkRead(offset: number, length: number): void {
    this.assertOpen();
    checkRange(offset, length, 'read');
    if (offset + length > this.size) {
      throw new StrataError('out-of-range', `Read of ${length} bytes at ${offset} is past the end of ${this.label} (${this.size} bytes).`);
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.assertWritable();
    checkRange(offset, data.length, 'write');
    if (!this.resizable && offset + data.length > this.size) {
      throw new StrataError('out-of-range', `Write of ${data.length} bytes at ${offset} is past the end of ${this.label} (${this.size} bytes, fixed size).`);
    }
    if (data.length === 0) return;
    await this._write(offset, data);
  }

  async flush(): Promise<void> {
    this.assertOpen();
    if (this.readOnly) return;
    await this._flush();
  }

  async truncate(size: number): Promise<void> {
    this.assertWritable();
    checkRange(size, 0, 'size');
    if (!this.resizable) {
      if (size === this.size) return;
      throw new StrataError('unsupported', `${this.label} has a fixed size (${this.size} bytes) and cannot be resized.`);
    }
    await this._truncate(size);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this._close();
  }
}
