import { mkdir, readdir, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { StrataError } from '../errors.js';
import { MANIFEST_SLOTS } from '../format/manifest.js';
import { nodeError } from '../store/node-file.js';

/**
 * The directory of a volume being created. It must be new or empty, so the volume's files never
 * mix with the user's; missing directories (the leaf and any parents) are created with mode
 * 0700. Should the creation fail, `undo` removes exactly what this creation made: the files in
 * the directory (it was empty before) and the directories it created, and says what is left.
 */
export interface NewVolumeDir {
  /** Remove what the creation made; resolves to a clause saying what is left ("nothing was created at vol"). */
  undo(): Promise<string>;
}

export async function prepareVolumeDir(dir: string): Promise<NewVolumeDir> {
  const st = await stat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw nodeError(e, `look up ${dir}`, false);
  });
  let created: string | undefined;
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
  } else {
    try {
      created = await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw nodeError(e, `create the directory ${dir}`, true);
    }
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
      if (created !== undefined) {
        // From the leaf up to the topmost directory this creation made; rmdir only removes empty ones.
        const top = resolve(created);
        for (let d = resolve(dir); ; d = dirname(d)) {
          try {
            await rmdir(d);
          } catch (e) {
            problems.push(`${d} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
            break;
          }
          if (d === top || dirname(d) === d) break;
        }
      }
      if (problems.length > 0) return `the volume was not created, but some of what was made could not be removed: ${problems.join(', ')}`;
      return created !== undefined ? `nothing was created (the directories made for it were removed)` : `nothing was created (${dir} is empty again, as before)`;
    },
  };
}
