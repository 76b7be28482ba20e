/**
 * A target file written under a temporary name beside it and renamed over it only once complete
 * (file fsynced, then the rename, then the directory fsynced). A failed or interrupted write
 * therefore never leaves a partial file at the target, and a file already there stays as it was
 * until the new one is whole. A block device cannot be renamed: it is written in place, and the
 * caller says what was written.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, realpathSync, unlinkSync, type Stats } from 'node:fs';
import { open as fsOpen, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { StrataError } from '../errors.js';
import { nodeError, NodeFileStore, type NodeIoMode } from './node-file.js';
import { danglingLink, foreignLink, trustedLink } from './node-links.js';
import { FILE_MODE } from './node-modes.js';

export interface StagedFile {
  /** the path as given */
  readonly path: string;
  /** the file that is replaced on commit: `path`, or where a symlink at `path` points */
  readonly target: string;
  /** where the bytes go until commit (`target` itself for a block device) */
  readonly store: NodeFileStore;
  /** a block device: written in place, nothing to rename */
  readonly inPlace: boolean;
  /** a regular file was at `target` before (it stays untouched until commit) */
  readonly replaces: boolean;
  /** the new content is at the target (renamed into place, or a device committed) */
  readonly placed: boolean;
  /** Flush, rename into place (files) and make the rename durable. Once only. */
  commit(): Promise<void>;
  /** Close and delete the temporary file (files; a device is only closed). Safe to call twice. */
  discard(): Promise<void>;
  /**
   * What is at the target now, as a clause for an error message. For a device, `written`
   * describes what reached it (the caller knows), e.g. "24 MiB of the image"; '' for nothing.
   */
  keptMessage(written?: string): string;
}

/** Temporary files not yet renamed or deleted: removed on process exit (a second Ctrl-C exits at once). */
const pending = new Set<string>();
let exitHookInstalled = false;

function track(temp: string): void {
  pending.add(temp);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const f of pending) {
      try {
        unlinkSync(f);
      } catch {
        // already gone, or the directory went away: nothing left to clean
      }
    }
  });
}

/**
 * Opens `path` for writing a whole new content: a temporary file in the same directory, or the
 * device itself when `path` is a block device. The temporary file is 0600 while it is written;
 * it takes the mode (and, where allowed, the owner and group) of the file it replaces, or
 * `mode` (default 0600, whatever the umask) when there was none.
 */
export async function stageFile(path: string, options: { io?: NodeIoMode; mode?: number } = {}): Promise<StagedFile> {
  const target = resolveTarget(path);
  const st = await stat(target).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw nodeError(e, `look up ${path}`, false);
  });
  if (st?.isBlockDevice()) {
    const store = await NodeFileStore.open(target, { io: options.io ?? 'async' });
    return deviceTarget(path, store);
  }
  if (st && !st.isFile()) {
    throw new StrataError('invalid-argument', `${path} is ${st.isDirectory() ? 'a directory' : 'neither a regular file nor a block device'}; give the path of a new or existing file, or of a block device.`);
  }
  const dir = dirname(target);
  const temp = join(dir, `.${basename(target)}.${randomBytes(6).toString('hex')}.stratadisk-tmp`);
  let handle;
  try {
    handle = await fsOpen(temp, 'wx', 0o600);
  } catch (e) {
    throw nodeError(e, `create a temporary file in ${dir} (the target is written there, then renamed to ${basename(target)})`, true);
  }
  track(temp);
  // The descriptor that created the file stays open until commit: modes and owners are set
  // through it, never through the path (a path in a shared directory can be swapped for a link).
  const own = handle;
  let store: NodeFileStore;
  try {
    await own.chmod(FILE_MODE);
    store = await NodeFileStore.open(temp, { noFollow: true, ...(options.io ? { io: options.io } : {}) });
  } catch (e) {
    await own.close().catch(() => {});
    await removeTemp(temp);
    throw e instanceof StrataError ? e : nodeError(e, `set the mode of ${temp}`, true);
  }
  let state: 'open' | 'renamed' | 'committed' | 'discarded' = 'open';
  return {
    path,
    target,
    store,
    inPlace: false,
    replaces: st !== undefined,
    get placed() {
      return state === 'renamed' || state === 'committed';
    },
    async commit() {
      if (state !== 'open') throw new StrataError('closed', `${path} was already ${state}.`);
      try {
        // the mode before the flush, so the fsync makes it durable along with the data
        await carryOver(own, temp, st, options.mode ?? FILE_MODE);
        await store.flush();
        await store.close();
        await own.close();
        await rename(temp, target).catch((e: unknown) => {
          throw nodeError(e, `rename ${temp} to ${target}`, true);
        });
      } catch (e) {
        state = 'discarded';
        await store.close().catch(() => {});
        await own.close().catch(() => {});
        await removeTemp(temp);
        throw e;
      }
      state = 'renamed';
      pending.delete(temp);
      await syncDir(dir);
      state = 'committed';
    },
    async discard() {
      if (state !== 'open') return;
      state = 'discarded';
      await store.close().catch(() => {});
      await own.close().catch(() => {});
      await removeTemp(temp);
    },
    keptMessage() {
      if (state === 'renamed') return `${path} is complete and in place, but its directory could not be synced: a crash before the next sync of ${dir} may bring back what was there before`;
      if (state === 'committed') return `${path} is complete`;
      return st === undefined ? `nothing was written at ${path} (no file was created there)` : `nothing was written at ${path} (the file that was there is unchanged)`;
    },
  };
}

function deviceTarget(path: string, store: NodeFileStore): StagedFile {
  let closed = false;
  let placed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await store.close();
  };
  return {
    path,
    target: path,
    store,
    inPlace: true,
    replaces: true,
    get placed() {
      return placed;
    },
    async commit() {
      await store.flush();
      await close();
      placed = true;
    },
    async discard() {
      // What reached the device stays there: make it durable, as the message will say it is there.
      if (!closed) await store.flush().catch(() => {});
      await close().catch(() => {});
    },
    keptMessage(written) {
      if (placed) return `${path} is complete`;
      if (written === '') return `nothing was written to ${path} (a block device)`;
      return `${path} is a block device, written in place: ${written ?? 'part of the image'} reached it, the rest of the device is as it was`;
    },
  };
}

/**
 * A symlink at `path` is followed (its target gets replaced, the link stays) when it belongs to
 * the current user or to root and points to something; a dangling link (the file would be
 * created wherever it points) or another user's link is `unsafe-path`. Anything else is used as is.
 */
function resolveTarget(path: string): string {
  let link;
  try {
    link = lstatSync(path);
  } catch {
    return path; // missing: written at `path` itself
  }
  if (!link.isSymbolicLink()) return path;
  let real;
  try {
    real = realpathSync(path);
  } catch {
    throw danglingLink(path);
  }
  if (!trustedLink(link)) throw foreignLink(path, link);
  return real;
}

/**
 * Gives the finished temporary file the mode of the file it replaces (and its owner and group,
 * which only root may set: ignored when not allowed), or `mode` for a new file; explicit, so the
 * umask plays no part.
 */
async function carryOver(own: FileHandle, temp: string, before: Stats | undefined, mode: number): Promise<void> {
  if (before === undefined) {
    await own.chmod(mode).catch((e: unknown) => {
      throw nodeError(e, `set the mode of ${temp}`, true);
    });
    return;
  }
  if (before.uid !== process.geteuid?.() || before.gid !== process.getegid?.()) {
    await own.chown(before.uid, before.gid).catch(() => {});
  }
  // after chown, which may clear set-id bits
  await own.chmod(before.mode & 0o7777).catch((e: unknown) => {
    throw nodeError(e, `give ${temp} the mode of the file it replaces`, true);
  });
}

async function removeTemp(temp: string): Promise<void> {
  await unlink(temp).catch(() => {});
  pending.delete(temp);
}

/** fsync a directory so that a rename in it survives a crash (a no-op where directories cannot be opened). */
async function syncDir(dir: string): Promise<void> {
  let h;
  try {
    h = await fsOpen(dir, 'r');
  } catch (e) {
    if (process.platform === 'win32') return;
    throw nodeError(e, `open directory ${dir} to sync it`, false);
  }
  try {
    await h.sync();
  } catch (e) {
    throw nodeError(e, `sync directory ${dir}`, true);
  } finally {
    await h.close().catch(() => {});
  }
}
