import { constants as fsConstants, read as fsRead, readSync, writeSync } from 'node:fs';
import { lstat, open as fsOpen, readFile, realpath, stat, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { StrataError } from '../errors.js';
import { PAGE, isPageAligned } from '../wasm/aligned.js';
import { danglingLink, foreignLink, trustedLink } from './node-links.js';
import { FILE_MODE } from './node-modes.js';
import { BaseStore } from './store.js';

/** O_NOFOLLOW where the platform has it (not on Windows, which has no such links to follow in a namespace). */
const NO_FOLLOW = fsConstants.O_NOFOLLOW ?? 0;

/**
 * How a {@link NodeFileStore} does its I/O.
 * - `'sync'`: `fs.readSync`/`fs.writeSync` on the fd, inside the returned promise. A 4 KiB read
 *   served from the page cache costs a microsecond or two; sending it through libuv's thread
 *   pool (`'async'`) costs a queue hop and two thread switches, several times more. Random
 *   small I/O is what a virtual disk does, so this is the default for regular files.
 * - `'async'`: `FileHandle.read`/`write` on the libuv thread pool. The event loop never blocks,
 *   which matters when reads miss the cache (cold raw devices), so it is the default for block
 *   devices.
 * Even in `'sync'` mode, two things stay on the thread pool, because there the hop is cheap next
 * to the work and blocking the event loop would stall every other client:
 * - transfers larger than {@link SYNC_IO_MAX_BYTES} (bandwidth-bound; may miss the cache);
 * - `flush`: it waits for the device, and with many dirty pages that takes tens of milliseconds.
 *   With one dirty page, `fdatasyncSync` saves only ~0.05 ms over `datasync()` (measured).
 */
export type NodeIoMode = 'async' | 'sync';

/**
 * In `'sync'` mode, transfers up to this size use blocking calls; larger ones use the thread
 * pool. 1 MiB from the page cache blocks for well under 0.1 ms, and it is the chunk size of
 * sequential volume reads, which then avoid the thread-pool hop (about 25% of their cost).
 */
export const SYNC_IO_MAX_BYTES = 1024 * 1024;

/**
 * Writes of at least this many bytes from page-aligned memory (src/wasm/aligned.ts), at page-
 * aligned offsets and lengths, go to a regular file with O_DIRECT (Linux), past the page cache.
 * Bulk copiers (qcow2 import/export) write hundreds of MiB once; through the page cache every
 * byte is copied into freshly allocated pages, which on a VM costs more CPU than the copy itself
 * (measured: 0.4–1.9 s of system time per 512 MiB buffered vs 0.15–0.2 s direct). Durability is
 * unchanged: a direct write is not durable either until `flush()` (fdatasync of the inode, which
 * also flushes the device cache). Other writes, and all reads, keep using the page cache; the
 * kernel keeps both views coherent (a direct write drops the cached pages it overwrites).
 */
export const DIRECT_MIN_BYTES = 1024 * 1024;

/** Options of {@link NodeFileStore.open}. */
export interface NodeFileOpenOptions {
  /** Create an empty regular file if nothing exists at the path. Default false (`not-found`). */
  create?: boolean;
  /** Open read-only: write/truncate throw `read-only`. */
  readOnly?: boolean;
  /** See {@link NodeIoMode}. Default: `'sync'` for regular files, `'async'` for block devices. */
  io?: NodeIoMode;
  /** In `'sync'` mode, the largest transfer done with a blocking call (default {@link SYNC_IO_MAX_BYTES}). */
  syncMaxBytes?: number;
  /** Mode of a file this call creates (default 0600, see node-modes.ts); an existing file keeps its own. */
  mode?: number;
  /** Refuse a symbolic link at `path` (`unsafe-path`) instead of following it: the stores of a namespace. */
  noFollow?: boolean;
  /** The path to name in messages and `path`, when `path` is an alias (/proc/self/fd/N/name). */
  label?: string;
}

/**
 * A Store over a regular file or a raw block device, with positional I/O on one descriptor.
 *
 * A regular file grows on writes past its end (the gap is a sparse hole that reads as zeros).
 * A block device has the size of the device (`resizable` false): writes past its end throw
 * `out-of-range` and `truncate` throws `unsupported`.
 */
export class NodeFileStore extends BaseStore {
  readonly path: string;
  readonly resizable: boolean;
  readonly isBlockDevice: boolean;
  readonly io: NodeIoMode;
  syncMaxBytes = SYNC_IO_MAX_BYTES;
  private readonly handle: FileHandle;
  /** O_DIRECT descriptor of the same file for large aligned writes: opened on first use, null when unavailable */
  private direct: FileHandle | null | undefined;
  private _size: number;

  private constructor(path: string, handle: FileHandle, size: number, blockDevice: boolean, readOnly: boolean, io: NodeIoMode) {
    super(blockDevice ? `block device ${path}` : `file ${path}`, readOnly);
    this.path = path;
    this.handle = handle;
    this._size = size;
    this.isBlockDevice = blockDevice;
    this.resizable = !blockDevice;
    this.io = io;
  }

  /**
   * Opens (or with `create`, creates) the file or block device at `path`. A file this call
   * creates gets `mode` (default 0600) explicitly, whatever the umask; an existing one keeps its
   * mode. A symbolic link at `path` is refused with `noFollow`; otherwise it is followed, but
   * never to create a file (a dangling link is `unsafe-path`), and for writing only when it
   * belongs to the current user or to root (see node-links.ts).
   */
  static async open(path: string, options: NodeFileOpenOptions = {}): Promise<NodeFileStore> {
    const readOnly = options.readOnly ?? false;
    const shown = options.label ?? path;
    for (let attempt = 0; ; attempt++) {
      // Look before opening: open() of a FIFO blocks until a writer appears, which would hang us.
      const link = await lstat(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw nodeError(e, `open ${shown}`, false);
      });
      let before = link;
      if (link?.isSymbolicLink()) {
        if (options.noFollow) throw new StrataError('unsafe-path', `${shown} is a symbolic link; it is not followed. Remove it, or put the real file there.`);
        before = await stat(path).catch((e: NodeJS.ErrnoException) => {
          if ((e.code === 'ENOENT' || e.code === 'ELOOP') && options.create) throw danglingLink(shown);
          throw nodeError(e, `open ${shown}`, false);
        });
        if (!readOnly && !trustedLink(link)) throw foreignLink(shown, link);
      }
      if (before === undefined && !options.create) throw nodeError(Object.assign(new Error('ENOENT'), { code: 'ENOENT' }), `open ${shown}`, false);
      if (before && !before.isFile() && !before.isBlockDevice()) throw notFileOrDevice(shown);
      const creating = before === undefined;
      // O_EXCL when creating: the file is ours, and a link planted meanwhile fails (EEXIST) instead
      // of being followed. O_CREAT is fine with O_RDONLY: `create` + `readOnly` gives an empty, read-only store.
      const flags =
        (readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR) |
        (creating ? fsConstants.O_CREAT | fsConstants.O_EXCL : 0) |
        (options.noFollow ? NO_FOLLOW : 0);
      let handle: FileHandle;
      try {
        handle = await fsOpen(path, flags, FILE_MODE);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // created (or replaced by a link) between the look and the open: look again, once
        if ((code === 'EEXIST' && creating) || (code === 'ENOENT' && !creating)) {
          if (attempt === 0) continue;
        }
        if (code === 'ELOOP' && options.noFollow) throw new StrataError('unsafe-path', `${shown} is a symbolic link; it is not followed. Remove it, or put the real file there.`, { cause: e });
        throw nodeError(e, `open ${shown}${readOnly ? '' : ' for writing'}`, !readOnly);
      }
      return await NodeFileStore.wrap(path, shown, handle, readOnly, creating ? (options.mode ?? FILE_MODE) : undefined, options);
    }
  }

  private static async wrap(path: string, shown: string, handle: FileHandle, readOnly: boolean, mode: number | undefined, options: NodeFileOpenOptions): Promise<NodeFileStore> {
    try {
      if (mode !== undefined) await handle.chmod(mode);
      const st = await handle.stat({ bigint: true });
      let size: number;
      const blockDevice = st.isBlockDevice();
      if (blockDevice) {
        size = await blockDeviceSize(path, st.rdev);
      } else if (st.isFile()) {
        size = Number(st.size);
      } else {
        throw notFileOrDevice(shown);
      }
      const io = options.io ?? (blockDevice ? 'async' : 'sync');
      const store = new NodeFileStore(shown, handle, size, blockDevice, readOnly, io);
      if (options.syncMaxBytes !== undefined) store.syncMaxBytes = options.syncMaxBytes;
      return store;
    } catch (e) {
      await handle.close().catch(() => {});
      throw e instanceof StrataError ? e : nodeError(e, `inspect ${shown}`, false);
    }
  }

  get size(): number {
    return this._size;
  }

  protected async _readInto(offset: number, target: Uint8Array): Promise<void> {
    if (this.io === 'sync' && target.length <= this.syncMaxBytes) {
      this.readSyncInto(offset, target);
      return;
    }
    let done = 0;
    try {
      while (done < target.length) {
        const n = await this.readAt(target, done, offset + done);
        if (n === 0) throw this.endedEarly(offset + done);
        done += n;
      }
    } catch (e) {
      throw e instanceof StrataError ? e : nodeError(e, `read ${target.length} bytes at ${offset} from ${this.label}`, false);
    }
  }

  /**
   * One pread on libuv's thread pool into target[at..], with the callback API: a promise-based
   * FileHandle.read costs a FileHandle round trip and an FSReqPromise (with its own stats
   * array) per call, a measurable share of the CPU of serving large reads over NBD.
   */
  private readAt(target: Uint8Array, at: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => {
      fsRead(this.handle.fd, target, at, target.length - at, position, (e, n) => (e ? reject(e) : resolve(n)));
    });
  }

  /** In `'sync'` mode, reads up to `syncMaxBytes` at once, without a promise; else false (use readInto). */
  readIntoNow(offset: number, target: Uint8Array): boolean {
    this.checkRead(offset, target.length);
    if (this.io !== 'sync' || target.length > this.syncMaxBytes) return false;
    this.readSyncInto(offset, target);
    return true;
  }

  private readSyncInto(offset: number, target: Uint8Array): void {
    let done = 0;
    try {
      while (done < target.length) {
        const n = readSync(this.handle.fd, target, done, target.length - done, offset + done);
        if (n === 0) throw this.endedEarly(offset + done);
        done += n;
      }
    } catch (e) {
      throw e instanceof StrataError ? e : nodeError(e, `read ${target.length} bytes at ${offset} from ${this.label}`, false);
    }
  }

  /** A zero-byte read means end of file: the file is shorter than this store believes. */
  private endedEarly(at: number): StrataError {
    return new StrataError('io', `${this.label} ended at ${at} bytes while ${this._size} were expected; was it truncated by another process? Reopen it.`);
  }

  protected async _write(offset: number, data: Uint8Array): Promise<void> {
    if (data.length >= DIRECT_MIN_BYTES && offset % PAGE === 0 && data.length % PAGE === 0 && !this.isBlockDevice && isPageAligned(data) && (await this.writeDirect(offset, data))) return;
    const sync = this.io === 'sync' && data.length <= this.syncMaxBytes;
    let done = 0;
    try {
      while (done < data.length) {
        const want = data.length - done;
        done +=
          sync
            ? writeSync(this.handle.fd, data, done, want, offset + done)
            : (await this.handle.write(data, done, want, offset + done)).bytesWritten;
      }
    } catch (e) {
      throw nodeError(e, `write ${data.length} bytes at ${offset} to ${this.label}`, true);
    }
    // Grow only once the bytes are there, so a concurrent read never sees a size it cannot read.
    const end = offset + data.length;
    if (end > this._size) this._size = end;
  }

  /** A write through the O_DIRECT descriptor; false (nothing written) when direct I/O is not available here. */
  private async writeDirect(offset: number, data: Uint8Array): Promise<boolean> {
    const O_DIRECT = (fsConstants as { O_DIRECT?: number }).O_DIRECT;
    if (this.direct === undefined) {
      this.direct = null;
      // Reopen this very file (not whatever the path names now) through /proc.
      if (O_DIRECT !== undefined && process.platform === 'linux') this.direct = await fsOpen(`/proc/self/fd/${this.handle.fd}`, fsConstants.O_WRONLY | O_DIRECT).catch(() => null);
    }
    const fd = this.direct;
    if (!fd) return false;
    let done = 0;
    try {
      while (done < data.length) done += (await fd.write(data, done, data.length - done, offset + done)).bytesWritten;
    } catch (e) {
      // EINVAL: this file system or device refuses the alignment (or a short write left the rest
      // unaligned); what was written stays valid, the rest goes through the page cache.
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw nodeError(e, `write ${data.length} bytes at ${offset} to ${this.label}`, true);
      this.direct = null;
      await fd.close().catch(() => {});
      if (done > 0) await this._write(offset + done, data.subarray(done));
      else return false;
    }
    const end = offset + data.length;
    if (end > this._size) this._size = end;
    return true;
  }

  protected async _flush(): Promise<void> {
    try {
      await this.handle.datasync();
    } catch (e) {
      throw nodeError(e, `flush ${this.label}`, true);
    }
  }

  protected async _truncate(size: number): Promise<void> {
    // Shrink the visible size first so no new read starts in the part being cut away.
    if (size < this._size) this._size = size;
    try {
      await this.handle.truncate(size);
    } catch (e) {
      throw nodeError(e, `resize ${this.label} to ${size} bytes`, true);
    }
    this._size = size;
  }

  protected async _close(): Promise<void> {
    try {
      const direct = this.direct;
      this.direct = null;
      if (direct) await direct.close();
      await this.handle.close();
    } catch (e) {
      throw nodeError(e, `close ${this.label}`, false);
    }
  }
}

function notFileOrDevice(path: string): StrataError {
  return new StrataError('unsupported', `${path} is neither a regular file nor a block device; give the path of a disk image file or a device such as /dev/sdb.`);
}

/**
 * The size in bytes of a block device. `fstat` reports 0 for devices, and Node has no ioctl
 * (BLKGETSIZE64) nor lseek(SEEK_END), so we ask the kernel through files it exports:
 * /sys/dev/block/MAJ:MIN/size (always in 512-byte sectors, whatever the logical block size),
 * then /sys/class/block/NAME/size by the device's real name, then /proc/partitions (1 KiB units).
 */
export async function blockDeviceSize(path: string, rdev: bigint | number): Promise<number> {
  const dev = BigInt(rdev);
  // glibc's gnu_dev_major/gnu_dev_minor encoding of a 64-bit dev_t.
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  let name: string | undefined;
  const candidates = [`/sys/dev/block/${major}:${minor}/size`];
  try {
    name = basename(await realpath(path));
    candidates.push(`/sys/class/block/${name}/size`);
  } catch {
    // A path we could open but not resolve: the major:minor lookups still work.
  }
  for (const file of candidates) {
    const sectors = await readSmallNumber(file);
    if (sectors !== undefined) return sectors * 512;
  }
  try {
    const table = await readFile('/proc/partitions', 'utf8');
    for (const line of table.split('\n')) {
      const [maj, min, blocks, devName] = line.trim().split(/\s+/);
      if ((Number(maj) === major && Number(min) === minor) || (name !== undefined && devName === name)) {
        const kib = Number(blocks);
        if (Number.isSafeInteger(kib)) return kib * 1024;
      }
    }
  } catch {
    // No /proc (not Linux): fall through to the error below.
  }
  throw new StrataError('unsupported', `Cannot find the size of block device ${path} (${major}:${minor}): neither /sys nor /proc/partitions describe it. Raw devices are supported on Linux; elsewhere, use an image file.`);
}

async function readSmallNumber(file: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Converts a Node fs error to a StrataError with a stable code and a message that says what to
 * do, keeping the original as `cause`. `writing` says whether the failed action changes data
 * (permission errors then mean "you cannot write here", i.e. `read-only`).
 */
export function nodeError(e: unknown, action: string, writing: boolean): StrataError {
  if (e instanceof StrataError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const detail = e instanceof Error ? e.message : String(e);
  switch (code) {
    case 'ENOENT':
      return new StrataError('not-found', `Cannot ${action}: it does not exist. Check the path, or pass { create: true } to create it.`, { cause: e });
    case 'EEXIST':
      return new StrataError('exists', `Cannot ${action}: it already exists. Open it instead, or delete it first.`, { cause: e });
    case 'EROFS':
      return new StrataError('read-only', `Cannot ${action}: the file system is mounted read-only. Open with { readOnly: true }, or remount it read-write.`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return writing
        ? new StrataError('read-only', `Cannot ${action}: permission denied. Open with { readOnly: true }, or get write permission (file mode, owner, or a disk group for devices).`, { cause: e })
        : new StrataError('io', `Cannot ${action}: permission denied. Check the file's mode and owner.`, { cause: e });
    case 'ENOSPC':
    case 'EDQUOT':
      return new StrataError('quota', `Cannot ${action}: ${code === 'EDQUOT' ? 'disk quota exceeded' : 'no space left on the device'}. Free some space and retry.`, { cause: e });
    case 'EISDIR':
      return new StrataError('io', `Cannot ${action}: it is a directory. Give the path of a file or a block device.`, { cause: e });
    case 'EBUSY':
      return new StrataError('locked', `Cannot ${action}: the device is busy (mounted or held exclusively). Unmount it or stop its user first.`, { cause: e });
    default:
      return new StrataError('io', `Cannot ${action}: ${detail}`, { cause: e });
  }
}
