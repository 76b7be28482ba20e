import { chmod, lstat, open as fsOpen, mkdir, readdir, readlink, rmdir, unlink } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { StrataError } from '../errors.js';
import { MANIFEST_SLOTS } from '../format/manifest.js';
import { nodeError } from '../store/node-file.js';
import { plainPath } from '../store/node-links.js';
import { DIR_MODE } from '../store/node-modes.js';

/**
 * The directory of a volume being created. It must be new or empty, so the volume's files never
 * mix with the user's, and a real directory, not a symbolic link (`unsafe-path`: through a link,
 * dangling or not, the volume would land wherever someone else pointed it). Missing directories
 * (the leaf and any parents) are created with mode 0700; the leaf, new or found empty, gets
 * `dirMode` (default 0700) explicitly, whatever the umask. Should the creation fail, `undo`
 * removes exactly what this creation made: the files in the directory (it was empty before) and
 * the directories it created (or gives a directory found empty its mode back), and says what is left.
 */
export interface NewVolumeDir {
  /** Remove what the creation made; resolves to a clause saying what is left ("nothing was created at vol"). */
  undo(): Promise<string>;
}

export async function prepareVolumeDir(given: string, dirMode = DIR_MODE): Promise<NewVolumeDir> {
  const dir = plainPath(given); // `vol/` would resolve a link at vol
  const st = await lstat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw nodeError(e, `look up ${dir}`, false);
  });
  let created: string | undefined;
  let oldMode: number | undefined;
  if (st?.isSymbolicLink()) {
    const to = await readlink(dir).catch(() => '?');
    throw new StrataError('unsafe-path', `${dir} is a symbolic link (to ${to}); a volume is created only in a real directory, never through a link. Give the directory itself, or remove the link.`);
  }
  if (st) {
    if (!st.isDirectory()) throw new StrataError('exists', `${dir} exists and is not a directory; a volume is a directory: give a new or empty directory.`);
    const entries = await readdir(dir).catch((e: unknown) => {
      throw nodeError(e, `list ${dir}`, false);
    });
    if (entries.some((n) => (MANIFEST_SLOTS as readonly string[]).includes(n))) {
      throw new StrataError('exists', `A volume already exists in ${dir}; open it, or give a new or empty directory.`);
    }
    if (entries.length > 0) {
      const shown = entries.sort().slice(0, 3).join(', ') + (entries.length > 3 ? ', ...' : '');
      throw new StrataError('exists', `${dir} is not empty (it holds ${shown}); a volume needs a directory of its own: give a new or empty directory.`);
    }
    oldMode = st.mode & 0o7777;
  } else {
    try {
      created = await mkdir(dir, { recursive: true, mode: DIR_MODE });
    } catch (e) {
      throw nodeError(e, `create the directory ${dir}`, true);
    }
  }
  try {
    await chmodDir(dir, dirMode);
  } catch (e) {
    const undone = created !== undefined ? await removeDirs(dir, created) : [];
    throw nodeError(e, `set the mode of ${dir}${undone.length > 0 ? ` (left behind: ${undone.join(', ')})` : ''}`, true);
  }
  return {
    async undo() {
      const problems: string[] = [];
      // The directory was empty (or new): every file in it now belongs to this creation.
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const d of entries) {
        if (!d.isFile()) continue;
        await unlink(join(dir, d.name)).catch((e: NodeJS.ErrnoException) => problems.push(`${join(dir, d.name)} (${e.code ?? e.message})`));
      }
      if (created !== undefined) problems.push(...(await removeDirs(dir, created)));
      else if (oldMode !== undefined) await chmodDir(dir, oldMode).catch(() => {});
      if (problems.length > 0) return `the volume was not created, but some of what was made could not be removed: ${problems.join(', ')}`;
      return created !== undefined ? `nothing was created (the directories made for it were removed)` : `nothing was created (${dir} is empty again, as before)`;
    },
  };
}

/** Removes `dir` and its parents up to `created` (the topmost one a mkdir made); rmdir only removes empty ones. Returns what could not be removed. */
async function removeDirs(dir: string, created: string): Promise<string[]> {
  const top = resolve(created);
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      await rmdir(d);
    } catch (e) {
      return [`${d} (${(e as NodeJS.ErrnoException).code ?? String(e)})`];
    }
    if (d === top || dirname(d) === d) return [];
  }
}

/** chmod of the directory itself, through a descriptor opened without following a link (a link put there meanwhile is refused, not chmodded). */
async function chmodDir(dir: string, mode: number): Promise<void> {
  if (process.platform === 'win32') return chmod(dir, mode);
  const h = await fsOpen(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code === 'ELOOP' || e.code === 'ENOTDIR') throw new StrataError('unsafe-path', `${dir} was replaced by a symbolic link or a file while the volume was being created; nothing is done through it.`, { cause: e });
    throw e;
  });
  try {
    await h.chmod(mode);
  } finally {
    await h.close().catch(() => {});
  }
}
