import { mkdir, open as fsOpen, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../errors.js';
import { lockDirectory } from './node-dir-lock.js';
import { nodeError, NodeFileStore, type NodeIoMode } from './node-file.js';
import { checkName, NAME_PATTERN, type NamespaceLock, type OpenOptions, type Store, type StoreNamespace } from './store.js';

export { processAlive } from './node-dir-lock.js';

/** Options of {@link NodeDirNamespace}. */
export interface NodeDirOptions {
  /** Stores open read-only; creating and deleting names throw `read-only`. */
  readOnly?: boolean;
  /** Create the directory (and its parents) if missing. Default false: a missing one is `not-found`. */
  create?: boolean;
  /** I/O mode of the stores it opens (see {@link NodeIoMode}). */
  io?: NodeIoMode;
  /** Largest blocking transfer in `'sync'` mode (see NodeFileOpenOptions.syncMaxBytes). */
  syncMaxBytes?: number;
}

/**
 * A namespace of stores that are the regular files of one directory. Names are file names
 * (checked by `checkName`, so never a path); subdirectories and files with other names are
 * ignored by `list`.
 *
 * Creating or deleting a file is durable only once the directory itself is fsynced: call
 * `sync()` after creations/deletions that must survive a crash.
 */
export class NodeDirNamespace implements StoreNamespace {
  readonly dir: string;
  readonly readOnly: boolean;
  private readonly options: NodeDirOptions;
  get label(): string {
    return this.dir;
  }
  private ready: Promise<void> | undefined;

  constructor(dir: string, options: NodeDirOptions = {}) {
    this.dir = dir;
    this.readOnly = options.readOnly ?? false;
    this.options = options;
  }

  /** The constructor cannot await, so the directory is checked/created once, on first use. */
  private init(): Promise<void> {
    this.ready ??= (async () => {
      try {
        if (this.options.create && !this.readOnly) await mkdir(this.dir, { recursive: true });
        const st = await stat(this.dir);
        if (!st.isDirectory()) throw new StrataError('invalid-argument', `${this.dir} is not a directory; give a directory path for the namespace.`);
      } catch (e) {
        this.ready = undefined; // let a later call retry, e.g. once the directory exists
        if (e instanceof StrataError) throw e;
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new StrataError('not-found', `Directory ${this.dir} does not exist; create it or pass { create: true }.`, { cause: e });
        }
        throw nodeError(e, `use directory ${this.dir}`, !!this.options.create);
      }
    })();
    return this.ready;
  }

  async open(name: string, options: OpenOptions = {}): Promise<Store> {
    checkName(name);
    await this.init();
    const path = join(this.dir, name);
    if (this.readOnly && options.create && !(await this.exists(name))) {
      throw new StrataError('read-only', `Cannot create "${name}": the namespace ${this.dir} is read-only.`);
    }
    const store = await NodeFileStore.open(path, {
      create: !this.readOnly && (options.create ?? false),
      readOnly: this.readOnly || (options.readOnly ?? false),
      ...(this.options.io ? { io: this.options.io } : {}),
      ...(this.options.syncMaxBytes !== undefined ? { syncMaxBytes: this.options.syncMaxBytes } : {}),
    }).catch((e: unknown) => {
      if (e instanceof StrataError && e.code === 'not-found') {
        throw new StrataError('not-found', `No store named "${name}" in ${this.dir}; pass { create: true } to create it.`, { cause: e });
      }
      throw e;
    });
    if (store.isBlockDevice) {
      // Only a symlink or a device node could get here; a namespace holds regular files.
      await store.close();
      throw new StrataError('unsupported', `"${name}" in ${this.dir} is a block device, not a regular file; open it with NodeFileStore.open instead.`);
    }
    return store;
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    await this.init();
    try {
      return (await stat(join(this.dir, name))).isFile();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw nodeError(e, `look up "${name}" in ${this.dir}`, false);
    }
  }

  /** Names of the regular files whose names are valid store names, sorted by code unit. */
  async list(): Promise<string[]> {
    await this.init();
    let entries;
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (e) {
      throw nodeError(e, `list ${this.dir}`, false);
    }
    return entries
      .filter((d) => d.isFile() && NAME_PATTERN.test(d.name))
      .map((d) => d.name)
      .sort();
  }

  /** Removes the store's file. Deleting a name that does not exist is not an error (as in MemoryNamespace). */
  async delete(name: string): Promise<void> {
    checkName(name);
    if (this.readOnly) throw new StrataError('read-only', `Cannot delete "${name}": the namespace ${this.dir} is read-only.`);
    await this.init();
    try {
      await unlink(join(this.dir, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw nodeError(e, `delete "${name}" from ${this.dir}`, true);
    }
  }

  /**
   * The writer lock: a file `.stratadisk.lock` naming its owner, linked into place complete, so
   * it always has an owner; a lock whose owner is gone is taken over safely. See node-dir-lock.ts.
   */
  async lock(): Promise<NamespaceLock> {
    if (this.readOnly) throw new StrataError('read-only', `Cannot lock ${this.dir} for writing: the namespace is read-only.`);
    await this.init();
    return lockDirectory(this.dir);
  }

  /**
   * fsyncs the directory, so that files created or unlinked before it survive a crash (a file's
   * own fsync does not cover its directory entry on Linux file systems).
   */
  async sync(): Promise<void> {
    await this.init();
    let handle;
    try {
      handle = await fsOpen(this.dir, 'r');
    } catch (e) {
      // Windows cannot open a directory as a file; NTFS journals metadata, so nothing to do.
      if (process.platform === 'win32') return;
      throw nodeError(e, `open directory ${this.dir} to sync it`, false);
    }
    try {
      await handle.sync();
    } catch (e) {
      throw nodeError(e, `sync directory ${this.dir}`, true);
    } finally {
      await handle.close().catch(() => {});
    }
  }
}
