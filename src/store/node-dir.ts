import { constants as fsConstants, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open as fsOpen, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../errors.js';
import { lockDirectory } from './node-dir-lock.js';
import { nodeError, NodeFileStore, type NodeIoMode } from './node-file.js';
import { linkInNamespace, plainPath } from './node-links.js';
import { dirModeFor, DIR_MODE, fileModeIn } from './node-modes.js';
import { checkName, NAME_PATTERN, type NamespaceLock, type OpenOptions, type Store, type StoreNamespace } from './store.js';

export { processAlive } from './node-dir-lock.js';

/** The namespace's directory is a link. */
function dirIsLink(dir: string): StrataError {
  return new StrataError('unsafe-path', `The directory ${dir} is a symbolic link; stores never follow links out of their directory. Give the real directory (or replace the link with it).`);
}

/** The directory itself, never through a link (O_NOFOLLOW refuses a link as the last component). */
const DIR_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_DIRECTORY ?? 0) | (fsConstants.O_NOFOLLOW ?? 0);

/**
 * Linux: /proc/self/fd/N/name resolves `name` inside the directory open as N, whatever is at the
 * directory's path by then (openat without openat: Node has none). Checked once per process.
 */
let procFd: boolean | undefined;
async function procFdWorks(h: FileHandle): Promise<boolean> {
  if (procFd === undefined) {
    if (process.platform !== 'linux') procFd = false;
    else procFd = await lstat(`/proc/self/fd/${h.fd}/.`).then((st) => st.isDirectory(), () => false);
  }
  return procFd;
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
  /**
   * Mode of the files it creates. Default: 0600, plus the group read/write bits of a directory
   * shared with its group only (0750, 0770; see node-modes.ts), so such a directory shares every
   * file added later. A directory created with `create` gets 0700, or with `mode` the matching
   * directory mode.
   */
  mode?: number;
}

/**
 * A namespace of stores that are the regular files of one directory. Names are file names
 * (checked by `checkName`, so never a path); subdirectories and files with other names are
 * ignored by `list`.
 *
 * Nothing in it is reached through a symbolic link: the directory is opened with O_NOFOLLOW
 * (a link at its path is `unsafe-path`; links further up the path given by the caller are the
 * caller's choice and followed), and every name is looked at with lstat and opened with
 * O_NOFOLLOW, so a link planted in the directory (or in place of it) is refused for open,
 * exists and delete, and never listed. On Linux the name is opened through the directory's own
 * descriptor (/proc/self/fd), so swapping the directory for a link between the check and the
 * use does not lead out of it either.
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
    this.dir = plainPath(dir);
    this.readOnly = options.readOnly ?? false;
    this.options = options;
  }

  /** The constructor cannot await, so the directory is checked/created once, on first use. */
  private init(): Promise<void> {
    this.ready ??= (async () => {
      try {
        let st = await lstat(this.dir).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT' && this.options.create && !this.readOnly) return undefined;
          throw e;
        });
        if (st === undefined) {
          const mode = this.options.mode === undefined ? DIR_MODE : dirModeFor(this.options.mode);
          const made = await mkdir(this.dir, { recursive: true, mode });
          // explicit, whatever the umask; only what this call made (not a directory found there)
          if (made !== undefined) await chmod(this.dir, mode);
          st = await lstat(this.dir);
        }
        if (st.isSymbolicLink()) throw dirIsLink(this.dir);
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

  /**
   * Runs `fn` with a path that reaches the directory itself (never through a link), and the
   * directory's mode: /proc/self/fd/N of a descriptor opened with O_DIRECTORY|O_NOFOLLOW on Linux,
   * else the path, checked with lstat.
   */
  private async at<T>(action: string, writing: boolean, fn: (base: string, dirMode: () => Promise<number>, handle: FileHandle | undefined) => Promise<T>): Promise<T> {
    await this.init();
    const byPath = async () => {
      const st = await lstat(this.dir).catch((e: unknown) => {
        throw nodeError(e, `${action} in ${this.dir}`, writing);
      });
      if (st.isSymbolicLink()) throw dirIsLink(this.dir);
      return fn(this.dir, async () => st.mode, undefined);
    };
    if (process.platform === 'win32') return byPath();
    let h: FileHandle;
    try {
      h = await fsOpen(this.dir, DIR_FLAGS);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // a directory we may search (x) but not read (r), e.g. 0711: names are still reachable,
      // checked by path (lstat, then O_NOFOLLOW on the name)
      if (code === 'EACCES' || code === 'EPERM') return byPath();
      throw await this.dirError(e, action, writing);
    }
    try {
      const held = h;
      return await fn((await procFdWorks(h)) ? `/proc/self/fd/${h.fd}` : this.dir, async () => (await held.stat()).mode, h);
    } finally {
      await h.close().catch(() => {});
    }
  }

  private async dirError(e: unknown, action: string, writing: boolean): Promise<StrataError> {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      const st = await lstat(this.dir).catch(() => undefined);
      if (st?.isSymbolicLink()) return dirIsLink(this.dir);
      if (st && !st.isDirectory()) return new StrataError('invalid-argument', `${this.dir} is not a directory; give a directory path for the namespace.`, { cause: e });
    }
    if (code === 'ENOENT') return new StrataError('not-found', `Directory ${this.dir} does not exist (it was removed); cannot ${action}.`, { cause: e });
    return nodeError(e, `${action} in ${this.dir}`, writing);
  }

  /** What is at `name`, never following a link: undefined when nothing; a link is `unsafe-path`. */
  private async look(base: string, name: string): Promise<Stats | undefined> {
    let st: Stats;
    try {
      st = await lstat(join(base, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw nodeError(e, `look up "${name}" in ${this.dir}`, false);
    }
    if (st.isSymbolicLink()) throw linkInNamespace(`"${name}"`, this.dir);
    return st;
  }

  async open(name: string, options: OpenOptions = {}): Promise<Store> {
    checkName(name);
    await this.init();
    if (this.readOnly && options.create && !(await this.exists(name))) {
      throw new StrataError('read-only', `Cannot create "${name}": the namespace ${this.dir} is read-only.`);
    }
    const create = !this.readOnly && (options.create ?? false);
    return this.at(`open "${name}"`, !this.readOnly, async (base, dirMode) => {
      // NodeFileStore.open looks (lstat) before it opens, refuses a link (noFollow), a directory
      // or a device node (`unsupported`), and opens with O_NOFOLLOW
      const store = await NodeFileStore.open(join(base, name), {
        create,
        readOnly: this.readOnly || (options.readOnly ?? false),
        noFollow: true,
        ...(create ? { mode: this.options.mode ?? fileModeIn(await dirMode()) } : {}),
        label: join(this.dir, name),
        ...(this.options.io ? { io: this.options.io } : {}),
        ...(this.options.syncMaxBytes !== undefined ? { syncMaxBytes: this.options.syncMaxBytes } : {}),
      }).catch((e: unknown) => {
        if (e instanceof StrataError && e.code === 'not-found') {
          throw new StrataError('not-found', `No store named "${name}" in ${this.dir}; pass { create: true } to create it.`, { cause: e });
        }
        if (e instanceof StrataError && e.code === 'unsafe-path') throw linkInNamespace(`"${name}"`, this.dir);
        throw e;
      });
      if (store.isBlockDevice) {
        // replaced by a device node between the look and the open; a namespace holds regular files.
        await store.close();
        throw new StrataError('unsupported', `"${name}" in ${this.dir} is a block device, not a regular file; open it with NodeFileStore.open instead.`);
      }
      return store;
    });
  }

  /** True for a regular file named `name`; false for nothing or another kind of entry; a link is `unsafe-path`. */
  async exists(name: string): Promise<boolean> {
    checkName(name);
    return this.at(`look up "${name}"`, false, async (base) => (await this.look(base, name))?.isFile() ?? false);
  }

  /** Names of the regular files whose names are valid store names, sorted by code unit (links are not listed). */
  async list(): Promise<string[]> {
    return this.at('list the stores', false, async (base) => {
      let entries;
      try {
        entries = await readdir(base, { withFileTypes: true });
      } catch (e) {
        throw nodeError(e, `list ${this.dir}`, false);
      }
      return entries
        .filter((d) => d.isFile() && NAME_PATTERN.test(d.name))
        .map((d) => d.name)
        .sort();
    });
  }

  /** Removes the store's file. Deleting a name that does not exist is not an error (as in MemoryNamespace); a link is `unsafe-path`. */
  async delete(name: string): Promise<void> {
    checkName(name);
    if (this.readOnly) throw new StrataError('read-only', `Cannot delete "${name}": the namespace ${this.dir} is read-only.`);
    await this.at(`delete "${name}"`, true, async (base) => {
      if ((await this.look(base, name)) === undefined) return;
      try {
        await unlink(join(base, name));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw nodeError(e, `delete "${name}" from ${this.dir}`, true);
      }
    });
  }

  /**
   * The writer lock: a file `.stratadisk.lock` naming its owner, linked into place complete, so
   * it always has an owner; a lock whose owner is gone is taken over safely. See node-dir-lock.ts.
   */
  async lock(): Promise<NamespaceLock> {
    if (this.readOnly) throw new StrataError('read-only', `Cannot lock ${this.dir} for writing: the namespace is read-only.`);
    await this.at('take the writer lock', true, async () => {});
    return lockDirectory(this.dir);
  }

  /**
   * fsyncs the directory, so that files created or unlinked before it survive a crash (a file's
   * own fsync does not cover its directory entry on Linux file systems).
   */
  async sync(): Promise<void> {
    // Windows cannot open a directory as a file; NTFS journals metadata, so nothing to do.
    await this.at('sync the directory', true, async (_base, _mode, handle) => {
      if (process.platform === 'win32') return;
      let h = handle;
      try {
        h ??= await fsOpen(this.dir, 'r').catch((e: unknown) => {
          throw nodeError(e, `open directory ${this.dir} to sync it`, false);
        });
        await h.sync();
      } catch (e) {
        throw nodeError(e, `sync directory ${this.dir}`, true);
      } finally {
        if (h !== handle) await h?.close().catch(() => {});
      }
    });
  }
}
