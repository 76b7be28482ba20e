import { mkdir, open as fsOpen, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { StrataError } from '../errors.js';
import { nodeError, NodeFileStore, type NodeIoMode } from './node-file.js';
import { checkName, NAME_PATTERN, type NamespaceLock, type OpenOptions, type Store, type StoreNamespace } from './store.js';

const LOCK_FILE = '.stratadisk.lock';

/** Is a process with this pid alive on this host? (signal 0 checks without sending anything) */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

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
   * The writer lock is a file `.stratadisk.lock` created exclusively (O_EXCL) holding the
   * owner's pid and host. A lock left by a process that no longer exists on this host is taken
   * over; any other holder makes this throw `locked` with who holds it. (Node has no flock; an
   * exclusive create is atomic on local file systems.)
   */
  async lock(): Promise<NamespaceLock> {
    if (this.readOnly) throw new StrataError('read-only', `Cannot lock ${this.dir} for writing: the namespace is read-only.`);
    await this.init();
    const path = join(this.dir, LOCK_FILE);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const h = await fsOpen(path, 'wx');
        try {
          await h.writeFile(JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }));
        } finally {
          await h.close();
        }
        let held = true;
        return {
          release: async () => {
            if (!held) return;
            held = false;
            await unlink(path).catch(() => {});
          },
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw nodeError(e, `lock ${this.dir}`, true);
      }
      let owner: { pid?: unknown; host?: unknown; since?: unknown } = {};
      try {
        owner = JSON.parse(await readFile(path, 'utf8')) as typeof owner;
      } catch {
        // Empty or half-written: its writer may be mid-way; only an old one is stale.
        const age = Date.now() - (await stat(path).then((s) => s.mtimeMs).catch(() => 0));
        if (age > 10_000) {
          await unlink(path).catch(() => {});
          continue;
        }
      }
      if (owner.host === hostname() && typeof owner.pid === 'number' && owner.pid !== process.pid && !processAlive(owner.pid)) {
        await unlink(path).catch(() => {});
        continue;
      }
      throw new StrataError(
        'locked',
        `The volume in ${this.dir} is open for writing by process ${String(owner.pid ?? '?')} on ${String(owner.host ?? '?')} (since ${String(owner.since ?? '?')}). Close it there, or open it read-only. If that process is gone, delete ${path}.`,
      );
    }
    throw new StrataError('locked', `Could not take the writer lock of ${this.dir}; another process keeps taking it. Try again.`);
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
