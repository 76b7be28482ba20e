/**
 * The permissions of what stratadisk creates on a local file system. A disk image holds
 * everything its guest ever wrote, so files are 0600 and directories 0700 by default, set
 * explicitly (fchmod/chmod after creating): the umask can neither widen nor narrow them.
 *
 * Sharing a volume with a group (a read-only NBD server under another account, a backup user)
 * goes through the directory: in a directory that grants its group access and others none
 * (0750, 0770: a deliberate choice, never what a umask makes), a new file gets owner read/write
 * plus the group's read/write bits; in any other directory (0700, and the 0755/0775 a default
 * umask makes) it is 0600. Never any bit for others. `create --mode 0640` makes the volume's
 * directory 0750, so every file any later command adds to it (a snapshot's layer, a job journal,
 * a compacted map) is 0640 too, whoever runs that command and whatever its umask. An existing
 * file keeps its mode when it is rewritten.
 */
import { StrataError } from '../errors.js';

/** Mode of a new file outside a namespace (an export, a raw mirror target, a salvaged image). */
export const FILE_MODE = 0o600;
/** Mode of a new directory (a volume, a namespace, a salvage output). */
export const DIR_MODE = 0o700;

/** The mode of a file created in a directory of mode `dirMode`: 0600, plus the group's read/write bits of a directory shared with its group only. */
export function fileModeIn(dirMode: number): number {
  if ((dirMode & 0o007) !== 0) return FILE_MODE;
  return FILE_MODE | (dirMode & 0o060);
}

/** The directory mode that gives new files `fileMode`: x where the group may read (to reach the files). */
export function dirModeFor(fileMode: number): number {
  return DIR_MODE | (fileMode & 0o060) | (fileMode & 0o040 ? 0o010 : 0);
}

/**
 * Parse a file mode given by a person (`0640`, `640`, `0o640`): owner read/write required,
 * group bits allowed, none for others (a disk image readable by every local user is never
 * what is meant; share it with a group instead).
 */
export function parseFileMode(text: string, what = '--mode'): number {
  const m = /^(?:0o?)?([0-7]{3})$/.exec(text.trim());
  const mode = m ? parseInt(m[1]!, 8) : NaN;
  if (!m || (mode & 0o600) !== 0o600 || (mode & ~0o660) !== 0) {
    throw new StrataError(
      'invalid-argument',
      `${what} ${text} is not allowed: give an octal file mode with read/write for the owner, optionally read or read/write for the group, and nothing for others: 0600 (the default), 0640 or 0660.`,
    );
  }
  return mode;
}
