/**
 * Where a copy may be written (Node): the checks a mirror's (or copy's) target passes before a
 * job starts, in the CLI and in the control server's request validation (./control.ts).
 *
 * A process that writes where someone else can plant things can be made to write anywhere: a
 * symlink `L000001.data -> /root/victim.txt` in a mirror target made a root-run server
 * overwrite the victim. So a target directory must be a real directory (not a symlink), owned
 * by the user this process runs as, not writable by other users, and hold only regular files
 * of that user with no other hard links (no symlinks, fifos, devices, subdirectories). Every
 * directory above it must be changeable only by that user or root (or be sticky, as /tmp is),
 * else another user could swap the target for a symlink after the check (as OpenSSH's
 * StrictModes demands of ~/.ssh). A target that does not exist is created 0700. The stores
 * then open each file with no-follow semantics (src/store/node-*.ts), which covers a symlink
 * planted in a directory that was private when checked.
 *
 * Group write counts as "other users" unless the group is the user's own private group (the
 * user-private-group scheme of Debian and Ubuntu, where umask 002 makes every directory 0775):
 * the directory's group is this process's group and no other account is in it (/etc/group
 * members, /etc/passwd primary groups). A group found nowhere locally (LDAP, ...) is treated
 * as shared.
 *
 * Refusals name the target as the requester gave it and its entries by their relative names.
 */
import { readFileSync } from 'node:fs';
import { lstat, mkdir, readdir, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { StrataError } from '../errors.js';
import { danglingLink, foreignLink, trustedLink } from '../store/node-links.js';

export interface TargetCheckOptions {
  /** create the directory (0700, and missing parents) when it does not exist; default false */
  create?: boolean;
  /** the target in messages (default: the path) */
  label?: string;
}

function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device';
  return 'not a regular file';
}

/** True when only this process's user is in group `gid` (a user-private group), by the local files. */
function privateGroup(gid: number): boolean {
  if (gid !== process.getegid?.()) return false;
  const uid = process.geteuid?.();
  let group: string;
  let passwd: string;
  try {
    group = readFileSync('/etc/group', 'utf8');
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return false;
  }
  const entry = group.split('\n').map((l) => l.split(':')).find((f) => f.length >= 4 && f[2] === String(gid));
  if (!entry) return false;
  const users = passwd.split('\n').map((l) => l.split(':')).filter((f) => f.length >= 4);
  const me = users.find((f) => f[2] === String(uid))?.[0];
  const members = entry[3]!.split(',').map((m) => m.trim()).filter((m) => m !== '' && m !== me);
  if (members.length > 0) return false;
  return !users.some((f) => f[3] === String(gid) && f[2] !== String(uid));
}

/** Write bits others have on a directory: group write counts unless the group is private. */
function othersMayWrite(st: Stats): boolean {
  if ((st.mode & 0o002) !== 0) return true;
  return (st.mode & 0o020) !== 0 && !privateGroup(st.gid);
}

/** What a link at `path` points to; null when dangling. */
async function lstatTarget(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * Every directory above `path` (existing ones) can be changed only by `uid` or root, or is
 * sticky; a symlink on the way must be `uid`'s or root's too.
 */
async function checkAncestors(path: string, uid: number, label: string): Promise<void> {
  for (let a = dirname(path); ; a = dirname(a)) {
    const l = await lstatOrNull(a);
    if (l) {
      const st = l.isSymbolicLink() ? await stat(a) : l;
      const owners = l.isSymbolicLink() ? [l.uid, st.uid] : [st.uid];
      if (owners.some((o) => o !== 0 && o !== uid)) {
        throw new StrataError('permission-denied', `${a}, above the target ${label}, belongs to another user, who could replace the target; write the copy under directories of your own.`);
      }
      if (st.isDirectory() && othersMayWrite(st) && (st.mode & 0o1000) === 0) {
        throw new StrataError('permission-denied', `${a}, above the target ${label}, can be changed by other users (mode ${octal(st.mode)}), who could replace the target; write the copy under directories only you can change (chmod go-w).`);
      }
    }
    if (dirname(a) === a) return;
  }
}

/**
 * Check (and with `create`, make) the mirror target directory `dir` before a job writes into it;
 * throws a StrataError naming what is wrong: `permission-denied` for what another user owns or
 * could change, `invalid-argument` for what is not a plain directory of regular files.
 */
export async function checkMirrorTarget(dir: string, options: TargetCheckOptions = {}): Promise<void> {
  const uid = process.geteuid?.();
  if (uid === undefined) return; // Windows: no uids to check
  const label = options.label ?? dir;
  const path = resolve(dir);
  await checkAncestors(path, uid, label);
  let st = await lstatOrNull(path);
  if (!st && options.create) {
    try {
      await mkdir(path, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new StrataError('io', `Cannot create the target ${label}: ${(e as Error).message}`, { cause: e });
    }
    st = await lstatOrNull(path);
  }
  if (!st) throw new StrataError('not-found', `The target ${label} does not exist.`);
  if (!st.isDirectory()) throw new StrataError('invalid-argument', `The target ${label} is ${kindOf(st)}, not a directory; give a real directory (or a new path).`);
  if (st.uid !== uid) throw new StrataError('permission-denied', `The target ${label} belongs to another user; mirror into a directory of the user the server runs as, or a new path.`);
  if (othersMayWrite(st)) {
    throw new StrataError('permission-denied', `The target ${label} can be changed by other users (mode ${octal(st.mode)}); make it private (chmod go-w), or mirror into a new path.`);
  }
  for (const name of (await readdir(path)).sort()) {
    const e = await lstatOrNull(join(path, name));
    if (!e) continue;
    if (!e.isFile()) throw new StrataError('invalid-argument', `The target ${label} holds "${name}", ${kindOf(e)}; a target holds only regular files. Remove it, or mirror into a new path.`);
    if (e.uid !== uid) throw new StrataError('permission-denied', `The target ${label} holds "${name}", a file of another user; remove it, or mirror into a new path.`);
    if (e.nlink > 1) throw new StrataError('invalid-argument', `The target ${label} holds "${name}", a file with other hard links; remove it, or mirror into a new path.`);
  }
}

/**
 * Check a raw image target (a file or a block device) before a job writes into it: an existing
 * regular file must be this user's with no other hard links; a symbolic link (such as
 * /dev/disk/by-id/...) only when this user or root owns it; every directory above must be safe
 * as for checkMirrorTarget.
 */
export async function checkRawTarget(file: string, options: { label?: string } = {}): Promise<void> {
  const uid = process.geteuid?.();
  if (uid === undefined) return;
  const label = options.label ?? file;
  const path = resolve(file);
  await checkAncestors(path, uid, label);
  const l = await lstatOrNull(path);
  if (!l) return;
  if (l.isSymbolicLink() && !trustedLink(l)) throw foreignLink(label, l);
  const st = l.isSymbolicLink() ? await lstatTarget(path) : l;
  if (!st) throw danglingLink(label);
  if (st.isBlockDevice()) return;
  if (!st.isFile()) throw new StrataError('invalid-argument', `The target ${label} is ${kindOf(st)}; a raw image goes to a regular file or a block device.`);
  if (st.uid !== uid) throw new StrataError('permission-denied', `The target ${label} is a file of another user; write the image to a file of your own.`);
  if (st.nlink > 1) throw new StrataError('invalid-argument', `The target ${label} is a file with other hard links; write the image to a new file.`);
}
