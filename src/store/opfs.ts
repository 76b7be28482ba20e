import { StrataError } from '../errors.js';
import './browser-dom.js';
import { browserError } from './browser-errors.js';
import { takeWebLock } from './browser-locks.js';
import { BaseStore, checkName, NAME_PATTERN, type NamespaceLock, type OpenOptions, type Store, type StoreNamespace } from './store.js';

/**
 * The sync access handle mode of every handle we open, writers and readers alike.
 *
 * Chromium (121+) has three modes, and a file's handles must all be of one kind:
 * - 'readwrite' (the default) is exclusive: while a writer holds it, no other handle — not even
 *   a 'read-only' one — can be opened (NoModificationAllowedError).
 * - 'read-only' handles share the file with other 'read-only' handles only.
 * - 'readwrite-unsafe' handles share the file with other 'readwrite-unsafe' handles only.
 * So the only combination in which a writer and readers coexist is 'readwrite-unsafe' on both
 * sides (test/browser/store/opfs-locks.test.ts checks all three). Readers still never write:
 * an OpfsStore opened read-only refuses write/truncate itself. Single-writer safety comes from
 * the namespace's Web Lock (`lock()`, taken by every writable Volume.open), not from the
 * handle mode. Browsers without the `mode` option ignore it and give an exclusive handle; a
 * second opener then gets `locked`, which is safe, only less capable.
 */
export type OpfsHandleMode = NonNullable<FileSystemCreateSyncAccessHandleOptions['mode']>;
export const OPFS_HANDLE_MODE: OpfsHandleMode = 'readwrite-unsafe';

/** Options of {@link OpfsStore}. */
export interface OpfsStoreOptions {
  readOnly?: boolean;
  label?: string;
}

/**
 * A Store over one OPFS file through a `FileSystemSyncAccessHandle`: synchronous, unbuffered
 * I/O on the file, available only in dedicated workers. Every call runs to completion before
 * it returns, so concurrent calls cannot interleave.
 *
 * A write that fails (e.g. `quota`: Chromium asks the quota manager for the bytes a write
 * adds before it writes anything) leaves the file as it was; the store re-reads its size from
 * the handle after any failure, so `size` never claims bytes the file does not have.
 */
export class OpfsStore extends BaseStore {
  readonly resizable = true;
  private readonly handle: FileSystemSyncAccessHandle;
  private cachedSize: number;

  constructor(handle: FileSystemSyncAccessHandle, options: OpfsStoreOptions = {}) {
    super(options.label ?? 'opfs', options.readOnly ?? false);
    this.handle = handle;
    this.cachedSize = handle.getSize();
  }

  /**
   * A writer knows its size; a reader asks the handle each time, because the writer (in
   * another worker or tab) may have grown or shrunk the file since (getSize is a cheap sync call).
   */
  get size(): number {
    if (this.readOnly && !this.closed) {
      try {
        this.cachedSize = this.handle.getSize();
      } catch {
        // A closed handle: keep the last size; the next I/O call reports the error.
      }
    }
    return this.cachedSize;
  }

  protected async _readInto(offset: number, target: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < target.length) {
        const n = this.handle.read(target.subarray(done), { at: offset + done });
        if (n <= 0) break;
        done += n;
      }
    } catch (e) {
      throw browserError(e, `read ${target.length} bytes at ${offset} from ${this.label}`);
    }
    if (done < target.length) {
      // Only a writer elsewhere shrinking the file under a reader gets here.
      throw new StrataError('out-of-range', `Read of ${target.length} bytes at ${offset} from ${this.label} ended after ${done} bytes: the file was shortened while it was read. Reopen it.`);
    }
  }

  protected async _write(offset: number, data: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < data.length) {
        const n = this.handle.write(data.subarray(done), { at: offset + done });
        if (n <= 0) throw new StrataError('io', `Write to ${this.label} at ${offset + done} made no progress.`);
        done += n;
      }
    } catch (e) {
      this.refreshSize();
      throw browserError(e, `write ${data.length} bytes at ${offset} to ${this.label}`);
    }
    if (offset + data.length > this.cachedSize) this.cachedSize = offset + data.length;
  }

  protected async _flush(): Promise<void> {
    try {
      this.handle.flush();
    } catch (e) {
      throw browserError(e, `flush ${this.label}`);
    }
  }

  protected async _truncate(size: number): Promise<void> {
    try {
      this.handle.truncate(size);
    } catch (e) {
      this.refreshSize();
      throw browserError(e, `resize ${this.label} to ${size} bytes`);
    }
    this.cachedSize = size;
  }

  protected async _close(): Promise<void> {
    try {
      this.handle.close();
    } catch (e) {
      throw browserError(e, `close ${this.label}`);
    }
  }

  private refreshSize(): void {
    try {
      this.cachedSize = this.handle.getSize();
    } catch {
      // keep the last known size
    }
  }
}

/** Options of {@link OpfsNamespace.open}. */
export interface OpfsNamespaceOptions {
  /** Create the directory (and its parents) if missing. Default false: a missing one is `not-found`. */
  create?: boolean;
  /** Stores open read-only; creating and deleting names throw `read-only`; no writer lock. */
  readOnly?: boolean;
  /**
   * Wraps every sync access handle this namespace opens: a hook for fault injection and
   * instrumentation (tests throw the browser's own DOMExceptions from it). Default: none.
   */
  wrapHandle?: (handle: FileSystemSyncAccessHandle, name: string) => FileSystemSyncAccessHandle;
}

/** Splits and checks a '/'-separated OPFS directory path; '' (or '/') is the OPFS root. */
function pathSegments(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '');
  for (const p of parts) {
    if (p === '.' || p === '..' || p.includes('\\') || p.includes('\0')) {
      throw new StrataError('invalid-argument', `OPFS path "${path}" is not allowed: use '/'-separated directory names without '.', '..' or '\\'.`);
    }
  }
  return parts;
}

/** Is this a dedicated worker with OPFS sync access handles? */
function syncHandlesAvailable(): boolean {
  return typeof FileSystemFileHandle !== 'undefined' && typeof (FileSystemFileHandle.prototype as Partial<FileSystemFileHandle>).createSyncAccessHandle === 'function';
}

/**
 * A namespace of stores that are the files of one directory of the origin private file system
 * (OPFS), e.g. `await OpfsNamespace.open('volumes/vm1', { create: true })`.
 *
 * `open` needs a dedicated worker (sync access handles exist only there); `exists`, `list`,
 * `delete` and `lock` work on the page too. Subdirectories and files whose names are not store
 * names are ignored by `list`.
 */
export class OpfsNamespace implements StoreNamespace {
  readonly path: string;
  readonly readOnly: boolean;
  readonly directory: FileSystemDirectoryHandle;
  get label(): string {
    return `OPFS ${this.path}`;
  }
  private readonly wrapHandle: OpfsNamespaceOptions['wrapHandle'];

  private constructor(path: string, directory: FileSystemDirectoryHandle, options: OpfsNamespaceOptions) {
    this.path = path;
    this.directory = directory;
    this.readOnly = options.readOnly ?? false;
    this.wrapHandle = options.wrapHandle;
  }

  /** True where OPFS exists at all (page or worker); `open` of a store also needs a dedicated worker. */
  static isAvailable(): boolean {
    return typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function';
  }

  /**
   * Opens the OPFS directory at `path` ('/'-separated, relative to
   * `navigator.storage.getDirectory()`; '' is the root).
   */
  static async open(path: string, options: OpfsNamespaceOptions = {}): Promise<OpfsNamespace> {
    const parts = pathSegments(path);
    if (!OpfsNamespace.isAvailable()) {
      throw new StrataError('unsupported', 'This context has no origin private file system (navigator.storage.getDirectory); use a current browser in a secure context, or IdbNamespace.');
    }
    const create = !!options.create && !options.readOnly;
    let dir: FileSystemDirectoryHandle;
    try {
      dir = await navigator.storage.getDirectory();
      for (const part of parts) dir = await dir.getDirectoryHandle(part, { create });
    } catch (e) {
      const err = browserError(e, `open the OPFS directory "${path}"`);
      if (err.code === 'not-found') {
        throw new StrataError('not-found', `OPFS directory "${path}" does not exist; pass { create: true } to create it.`, { cause: e });
      }
      throw err;
    }
    return new OpfsNamespace(parts.join('/'), dir, options);
  }

  /**
   * Deletes the OPFS directory at `path` with everything in it. Missing is not an error. Fails
   * with `locked` while any store in it is open.
   */
  static async destroy(path: string): Promise<void> {
    const parts = pathSegments(path);
    if (parts.length === 0) throw new StrataError('invalid-argument', 'Refusing to delete the whole OPFS root; name a directory.');
    try {
      let dir = await navigator.storage.getDirectory();
      for (const part of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
      await dir.removeEntry(parts[parts.length - 1]!, { recursive: true });
    } catch (e) {
      const err = browserError(e, `delete the OPFS directory "${path}"`);
      if (err.code === 'not-found') return;
      throw err;
    }
  }

  private nameOf(name: string): string {
    return `opfs:${this.path ? `${this.path}/` : ''}${name}`;
  }

  async open(name: string, options: OpenOptions = {}): Promise<Store> {
    checkName(name);
    if (!syncHandlesAvailable()) {
      throw new StrataError('unsupported', 'OPFS stores need FileSystemSyncAccessHandle, which exists only in dedicated workers: open the volume in a worker (stratadisk/worker), or use IdbNamespace on the page.');
    }
    const readOnly = this.readOnly || !!options.readOnly;
    const create = !!options.create;
    if (create && this.readOnly && !(await this.exists(name))) {
      throw new StrataError('read-only', `Cannot create "${name}": the namespace ${this.nameOf('')} is read-only.`);
    }
    let file: FileSystemFileHandle;
    try {
      file = await this.directory.getFileHandle(name, { create: create && !this.readOnly });
    } catch (e) {
      const err = browserError(e, `open ${this.nameOf(name)}`);
      if (err.code === 'not-found') {
        throw new StrataError('not-found', `No store named "${name}" in ${this.nameOf('')}; pass { create: true } to create it.`, { cause: e });
      }
      throw err;
    }
    let handle: FileSystemSyncAccessHandle;
    try {
      handle = await file.createSyncAccessHandle({ mode: OPFS_HANDLE_MODE });
    } catch (e) {
      throw browserError(e, `open ${this.nameOf(name)} for ${readOnly ? 'reading' : 'writing'}`);
    }
    if (this.wrapHandle) handle = this.wrapHandle(handle, name);
    return new OpfsStore(handle, { readOnly, label: this.nameOf(name) });
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    try {
      await this.directory.getFileHandle(name);
      return true;
    } catch (e) {
      const err = browserError(e, `look up ${this.nameOf(name)}`);
      // TypeMismatchError: a directory of that name, which is not a store.
      if (err.code === 'not-found' || err.code === 'invalid-argument') return false;
      throw err;
    }
  }

  /** Names of the files whose names are valid store names, sorted by code unit. */
  async list(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const [name, handle] of this.directory.entries()) {
        if (handle.kind === 'file' && NAME_PATTERN.test(name)) names.push(name);
      }
    } catch (e) {
      throw browserError(e, `list ${this.nameOf('')}`);
    }
    return names.sort();
  }

  /** Removes the store's file; a missing name is not an error. `locked` while it is open anywhere. */
  async delete(name: string): Promise<void> {
    checkName(name);
    if (this.readOnly) throw new StrataError('read-only', `Cannot delete "${name}": the namespace ${this.nameOf('')} is read-only.`);
    try {
      await this.directory.removeEntry(name);
    } catch (e) {
      const err = browserError(e, `delete ${this.nameOf(name)}`);
      if (err.code === 'not-found') return;
      throw err;
    }
  }

  /**
   * A no-op: OPFS has no directory fsync. The browser records a created or removed entry in its
   * own storage before `getFileHandle({ create })` / `removeEntry` resolve, and offers no
   * stronger barrier for names; file contents are made durable by each store's `flush`.
   */
  async sync(): Promise<void> {}

  /**
   * The writer lock: the Web Lock `stratadisk:opfs:<path>`, taken without waiting. Held until
   * `release()`, or until the tab or worker holding it closes, crashes or is terminated (the
   * browser releases it then), so a crashed writer never blocks the next one.
   */
  async lock(): Promise<NamespaceLock> {
    if (this.readOnly) throw new StrataError('read-only', `Cannot lock ${this.nameOf('')} for writing: the namespace is read-only.`);
    return takeWebLock(
      `stratadisk:opfs:${this.path}`,
      `The volume in ${this.nameOf('')} is open for writing in another tab or worker. Close it there (or close the other tab), or open it read-only.`,
    );
  }
}
