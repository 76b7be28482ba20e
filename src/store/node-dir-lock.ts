/**
 * The writer lock of a directory on a local file system: a file `.stratadisk.lock` that always
 * names its owner (pid, host, a random token, since when).
 *
 * Taking it: the owner record is written to a temporary file of our own, fsynced, and then
 * hard-linked to the lock's name. `link` fails with EEXIST when the lock exists, so exactly one
 * process gets it, and the lock is never visible empty or half written: a full disk fails the
 * temporary file, which is removed, before anything exists under the lock's name.
 *
 * Taking over: a lock whose owner is gone (its pid is not alive on this host), or one that cannot
 * be parsed (this code never makes one; older versions created the file before writing it), is
 * stale. It is removed only while holding `.stratadisk.lock.break` (taken the same way), and
 * only if the lock still has the bytes that were judged stale. Two processes that both find a dead
 * owner therefore cannot both remove it, and neither can remove the lock the other one has just
 * taken: the second one to hold the break file sees the new owner's record and stops. A process
 * that dies holding the break file (a window of a few system calls) leaves it naming a dead owner;
 * that is reported with the file to delete, never guessed away.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, open as fsOpen, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { StrataError } from '../errors.js';
import type { NamespaceLock } from './store.js';
import { nodeError } from './node-file.js';

export const LOCK_FILE = '.stratadisk.lock';
const BREAK_FILE = '.stratadisk.lock.break';
/** How often a lock being broken by another live process is looked at again before giving up. */
const BREAK_WAIT_TRIES = 50;
const BREAK_WAIT_MS = 20;

/** Is a process with this pid alive on this host? (signal 0 checks without sending anything) */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Owner {
  pid?: unknown;
  host?: unknown;
  since?: unknown;
  token?: unknown;
}

/** Takes the writer lock of `dir`, or throws `locked` naming the holder. */
export async function lockDirectory(dir: string): Promise<NamespaceLock> {
  const path = join(dir, LOCK_FILE);
  const token = randomBytes(8).toString('hex');
  const record = JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString(), token });
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await linkRecord(dir, path, record, token, 'take the writer lock of')) return heldLock(path, token);
    const seen = await readLock(path);
    if (seen === null) continue; // released in the meantime
    const owner = parse(seen);
    if (!isStale(owner)) throw lockedBy(dir, path, owner);
    await breakStale(dir, path, seen, token);
  }
  throw new StrataError('locked', `Could not take the writer lock of ${dir}; other processes keep taking it. Try again.`);
}

/**
 * Writes `record` to a fresh temporary file, fsyncs it and links it to `path`. Resolves false
 * when `path` exists. The temporary file is always removed.
 */
async function linkRecord(dir: string, path: string, record: string, token: string, what: string): Promise<boolean> {
  const temp = join(dir, `${LOCK_FILE}.${process.pid}.${token}.tmp`);
  try {
    const h = await fsOpen(temp, 'wx', 0o600);
    try {
      await h.writeFile(record);
      await h.sync();
    } finally {
      await h.close();
    }
    await link(temp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw nodeError(e, `${what} ${dir} (no lock file was left behind)`, true);
  } finally {
    await unlink(temp).catch(() => {});
  }
}

function heldLock(path: string, token: string): NamespaceLock {
  let held = true;
  return {
    release: async () => {
      if (!held) return;
      held = false;
      // Remove only our own record: should it have been taken over (wrongly judged stale, e.g.
      // from another pid namespace), the new holder's lock must stay.
      // Unreadable: leave it; with its owner gone it is stale and the next writer takes it over.
      const seen = await readLock(path).catch(() => null);
      if (seen !== null && parse(seen).token === token) await unlink(path).catch(() => {});
    },
  };
}

/** Longest lock record read; ours are about 120 bytes. */
const MAX_RECORD = 4096;

/**
 * The lock's record, or null when there is none. Read without following a link and without
 * blocking on a FIFO: a lock planted as a link (to a secret, to a device) is `unsafe-path`.
 */
async function readLock(path: string): Promise<string | null> {
  let h;
  try {
    h = await fsOpen(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0) | (fsConstants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new StrataError('unsafe-path', `The lock ${basename(path)} in ${dirname(path)} is a symbolic link; it is not followed. Remove it if no stratadisk process uses the directory.`, { cause: e });
    throw nodeError(e, `read the lock ${path}`, false);
  }
  try {
    if (!(await h.stat()).isFile()) throw new StrataError('unsafe-path', `The lock ${basename(path)} in ${dirname(path)} is not a regular file. Remove it if no stratadisk process uses the directory.`);
    const buf = Buffer.alloc(MAX_RECORD);
    const { bytesRead } = await h.read(buf, 0, MAX_RECORD, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } catch (e) {
    throw e instanceof StrataError ? e : nodeError(e, `read the lock ${path}`, false);
  } finally {
    await h.close().catch(() => {});
  }
}

function parse(text: string): Owner {
  try {
    const o = JSON.parse(text) as unknown;
    return o !== null && typeof o === 'object' ? (o as Owner) : {};
  } catch {
    return {};
  }
}

/** No owner record (never written by this code), or an owner on this host that is gone. */
function isStale(owner: Owner): boolean {
  if (typeof owner.pid !== 'number') return true;
  return owner.host === hostname() && owner.pid !== process.pid && !processAlive(owner.pid);
}

/** Removes the lock if it still holds exactly `stale`, under the break file. Exported for tests. */
export async function breakStale(dir: string, path: string, stale: string, token: string): Promise<void> {
  const breakPath = join(dir, BREAK_FILE);
  const record = JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString(), token });
  for (let tries = 0; ; tries++) {
    if (await linkRecord(dir, breakPath, record, `b${token}`, 'take over the stale writer lock of')) break;
    const seen = await readLock(breakPath);
    if (seen === null) continue;
    const breaker = parse(seen);
    if (typeof breaker.pid === 'number' && breaker.host === hostname() && breaker.pid !== process.pid && !processAlive(breaker.pid)) {
      throw new StrataError(
        'locked',
        `The writer lock of ${dir} is stale, but process ${breaker.pid} died while taking it over and left ${breakPath}. If no stratadisk process uses ${dir}, delete ${breakPath} and retry.`,
      );
    }
    if (tries >= BREAK_WAIT_TRIES) {
      throw new StrataError('locked', `Process ${String(breaker.pid ?? '?')} on ${String(breaker.host ?? '?')} is taking over the stale writer lock of ${dir}; try again in a moment.`);
    }
    await new Promise((r) => setTimeout(r, BREAK_WAIT_MS));
  }
  try {
    if ((await readLock(path)) === stale) await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw nodeError(e, `remove the stale lock ${path}`, true);
  } finally {
    await unlink(breakPath).catch(() => {});
  }
}

function lockedBy(dir: string, path: string, owner: Owner): StrataError {
  return new StrataError(
    'locked',
    `The volume in ${dir} is open for writing by process ${String(owner.pid)} on ${String(owner.host ?? '?')} (since ${String(owner.since ?? '?')}). Close it there, or open it read-only. If that process is gone, delete ${path}.`,
  );
}
