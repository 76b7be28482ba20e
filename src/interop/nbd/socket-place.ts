/**
 * Where `serve-nbd` listens when told nothing: a Unix socket only its user can reach. The
 * socket sits in a directory of its own that is 0700 and owned by this user — under
 * $XDG_RUNTIME_DIR (itself private to the user, removed at logout) when that is usable, else
 * `stratadisk-UID` in the system's temporary directory — and is itself made 0600.
 * A directory at that place that another user owns, or that others may enter, or a symbolic
 * link there, is refused: someone else could otherwise watch or replace the socket.
 */
import { lstatSync, mkdirSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join } from 'node:path';
import { StrataError } from '../../errors.js';

/** sun_path holds 108 bytes on Linux (104 on macOS), the terminating NUL included. */
const MAX_SOCKET_PATH = 103;

/** A 0700 directory of this user's for sockets (created when missing); refused if not safely ours. */
export function privateSocketDir(env: NodeJS.ProcessEnv = process.env): string {
  const uid = process.getuid?.();
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && isAbsolute(runtime) && ownPrivateDir(runtime, uid)) return ensurePrivateDir(join(runtime, 'stratadisk'), uid);
  return ensurePrivateDir(join(tmpdir(), `stratadisk-${uid ?? 'user'}`), uid);
}

let served = 0;

/** The default NBD socket for a served volume: `<private dir>/<name>-<pid>[-<n>].nbd.sock`. */
export function defaultNbdSocket(volumeName: string, env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'win32') return `\\\\.\\pipe\\stratadisk-nbd-${process.pid}-${served++}`;
  const dir = privateSocketDir(env);
  const safe = basename(volumeName).replace(/[^A-Za-z0-9._@-]/g, '_').slice(0, 32) || 'volume';
  // the process ID, and a count for a second server in the same process
  const n = served++;
  const path = join(dir, `${safe}-${process.pid}${n > 0 ? `-${n}` : ''}.nbd.sock`);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new StrataError('invalid-argument', `The default socket path ${path} is too long for a Unix socket; give one with --socket PATH (in a directory only you can enter).`);
  }
  return path;
}

/** Make a listening socket's file 0600 (the directory around it decides who reaches it too). */
export async function makeSocketPrivate(path: string): Promise<void> {
  if (process.platform === 'win32') return;
  await chmod(path, 0o600);
}

function ownPrivateDir(path: string, uid: number | undefined): boolean {
  try {
    const st = lstatSync(path);
    return st.isDirectory() && (uid === undefined || st.uid === uid) && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

function ensurePrivateDir(path: string, uid: number | undefined): string {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new StrataError('io', `Cannot create the socket directory ${path}: ${(e as Error).message}. Give a socket path with --socket PATH.`, { cause: e });
    }
  }
  const st = lstatSync(path);
  if (!st.isDirectory() || st.isSymbolicLink()) {
    throw new StrataError('exists', `${path} is not a directory; it was left alone. Remove it, or give a socket path with --socket PATH.`);
  }
  if (uid !== undefined && st.uid !== uid) {
    throw new StrataError('exists', `The socket directory ${path} belongs to another user (uid ${st.uid}); it was left alone. Remove it, or give a socket path with --socket PATH.`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new StrataError('exists', `The socket directory ${path} may be entered by other users (mode ${(st.mode & 0o777).toString(8)}); \`chmod 700 ${path}\`, or give a socket path with --socket PATH.`);
  }
  return path;
}
