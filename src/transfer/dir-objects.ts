/**
 * An ObjectStore in a local directory: key `a/b/c` is the file `DIR/a/b/c`. Puts are atomic
 * (temporary file, fsync, rename, fsync of the directory); new files are 0600 and directories
 * 0700; symbolic links inside the directory are never followed (`unsafe-path`). Temporary files
 * are named `.#…`, which no key can be, so a listing never shows them.
 */
import { constants, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, unlink, chmod } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { StrataError } from '../errors.js';
import { foreignLink, linkInNamespace, plainPath, trustedLink } from '../store/node-links.js';
import { DIR_MODE, FILE_MODE } from '../store/node-modes.js';
import { checkObjectKey } from './memory-objects.js';
import { OBJECT_KEY, type ObjectInfo, type ObjectRange, type ObjectStore } from './object-store.js';

const code = (e: unknown): string | undefined => (e as { code?: string }).code;

function ioError(what: string, e: unknown): StrataError {
  if (e instanceof StrataError) return e;
  switch (code(e)) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new StrataError('quota', `${what}: ${code(e) === 'EDQUOT' ? 'disk quota exceeded' : 'no space left on the device'}. Free some space and try again.`, { cause: e });
    case 'EROFS':
      return new StrataError('read-only', `${what}: the file system is mounted read-only.`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new StrataError('permission-denied', `${what}: permission denied. Check the directory's owner and mode.`, { cause: e });
  }
  return new StrataError('io', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled');
}

export class DirObjectStore implements ObjectStore {
  readonly description: string;

  private constructor(readonly root: string) {
    this.description = root;
  }

  static async open(path: string, options: { create?: boolean } = {}): Promise<DirObjectStore> {
    const root = plainPath(path);
    let st: Stats;
    try {
      st = await lstat(root);
    } catch (e) {
      if (code(e) !== 'ENOENT') throw ioError(`Cannot open ${root}`, e);
      if (!options.create) throw new StrataError('not-found', `${root} does not exist; publish into it to create it.`);
      await mkdir(root, { recursive: true, mode: DIR_MODE });
      await chmod(root, DIR_MODE);
      st = await lstat(root);
    }
    if (st.isSymbolicLink()) {
      if (!trustedLink(st)) throw foreignLink(root, st);
      st = await import('node:fs/promises').then((fs) => fs.stat(root));
    }
    if (!st.isDirectory()) throw new StrataError('invalid-argument', `${root} is not a directory; an object store in a local path is a directory.`);
    return new DirObjectStore(root);
  }

  /** Check every directory on the way to `key` (no links); with `create`, make missing ones 0700. */
  private async dirFor(key: string, create: boolean): Promise<string | null> {
    const parts = key.split('/');
    let dir = this.root;
    for (const p of parts.slice(0, -1)) {
      dir = join(dir, p);
      let st: Stats;
      try {
        st = await lstat(dir);
      } catch (e) {
        if (code(e) !== 'ENOENT') throw ioError(`Cannot reach ${dir}`, e);
        if (!create) return null;
        try {
          await mkdir(dir, { mode: DIR_MODE });
          await chmod(dir, DIR_MODE);
        } catch (e2) {
          if (code(e2) !== 'EEXIST') throw ioError(`Cannot create ${dir}`, e2);
        }
        st = await lstat(dir);
      }
      if (st.isSymbolicLink()) throw linkInNamespace(p, this.root);
      if (!st.isDirectory()) return null;
    }
    return dir;
  }

  private async openFile(key: string): Promise<{ fh: import('node:fs/promises').FileHandle; size: number; modified: number } | null> {
    checkObjectKey(key);
    if ((await this.dirFor(key, false)) === null) return null;
    const path = join(this.root, key);
    let fh;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return null;
      if (code(e) === 'ELOOP') throw linkInNamespace(key, this.root);
      throw ioError(`Cannot read ${path}`, e);
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      return null;
    }
    return { fh, size: st.size, modified: st.mtimeMs };
  }

  async get(key: string, range?: ObjectRange, signal?: AbortSignal): Promise<Uint8Array | null> {
    aborted(signal);
    const f = await this.openFile(key);
    if (!f) return null;
    try {
      const start = Math.min(range?.offset ?? 0, f.size);
      const length = Math.max(0, Math.min(f.size - start, range ? range.length : f.size));
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await f.fh.read(out, done, length - done, start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === length ? out : out.subarray(0, done);
    } finally {
      await f.fh.close();
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    aborted(signal);
    const f = await this.openFile(key);
    if (!f) return null;
    await f.fh.close();
    return { key, size: f.size, modified: f.modified };
  }

  async put(key: string, data: Uint8Array, options?: { ifAbsent?: boolean; signal?: AbortSignal }): Promise<boolean> {
    aborted(options?.signal);
    checkObjectKey(key);
    const dir = await this.dirFor(key, true);
    if (dir === null) throw new StrataError('invalid-argument', `Cannot store ${key} in ${this.root}: a file stands where a directory of its key must be.`);
    const path = join(this.root, key);
    const tmp = join(dir, `.#${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, FILE_MODE).catch((e: unknown) => {
      throw ioError(`Cannot create a file in ${dir}`, e);
    });
    try {
      await fh.chmod(FILE_MODE);
      let done = 0;
      while (done < data.length) done += (await fh.write(data, done, data.length - done, done)).bytesWritten;
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw ioError(`Cannot write ${path}`, e);
    }
    await fh.close();
    let wrote = true;
    try {
      const st = await lstat(path).catch(() => null);
      if (st?.isSymbolicLink()) throw linkInNamespace(key, this.root);
      if (options?.ifAbsent) {
        // link() never replaces: it fails when the name exists, atomically
        try {
          await link(tmp, path);
        } catch (e) {
          if (code(e) !== 'EEXIST') throw e;
          wrote = false;
        }
        await unlink(tmp);
      } else await rename(tmp, path);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw ioError(`Cannot store ${path}`, e);
    }
    const dh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    return wrote;
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    aborted(signal);
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    if (base !== '') checkObjectKey(base);
    if (base !== '' && (await this.dirFor(`${base}/x`, false)) === null) return;
    const found: ObjectInfo[] = [];
    const walk = async (rel: string): Promise<void> => {
      aborted(signal);
      let names: string[];
      try {
        names = await readdir(rel === '' ? this.root : join(this.root, rel));
      } catch (e) {
        if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return;
        throw ioError(`Cannot list ${join(this.root, rel)}`, e);
      }
      for (const name of names) {
        const key = rel === '' ? name : `${rel}/${name}`;
        if (!OBJECT_KEY.test(key)) continue; // temporary files and foreign names
        if (!key.startsWith(prefix) && !prefix.startsWith(`${key}/`)) continue;
        const st = await lstat(join(this.root, key)).catch(() => null);
        if (!st || st.isSymbolicLink()) continue;
        if (st.isDirectory()) await walk(key);
        else if (st.isFile() && key.startsWith(prefix)) found.push({ key, size: st.size, modified: st.mtimeMs });
      }
    };
    await walk(base);
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* found;
  }

  async delete(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    aborted(signal);
    for (const key of keys) {
      checkObjectKey(key);
      if ((await this.dirFor(key, false)) === null) continue;
      const path = join(this.root, key);
      const st = await lstat(path).catch(() => null);
      if (!st) continue;
      if (st.isDirectory()) continue;
      try {
        await unlink(path);
      } catch (e) {
        if (code(e) !== 'ENOENT') throw ioError(`Cannot delete ${path}`, e);
      }
    }
  }
}
