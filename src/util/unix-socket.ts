/**
 * Listening on a Unix socket path (Node), for the NBD server, the control socket and a
 * consistency group's host. A server that died without closing (kill -9, a crash, a power cut)
 * leaves its socket file behind, and listen() on that path then fails with EADDRINUSE. As
 * qemu-nbd does, a stale socket is removed first — but only when it is certainly stale: it is
 * a socket (never a regular file or anything else), it belongs to this user, and connecting to
 * it is refused (ECONNREFUSED: nothing listens). A socket something answers on is 'locked'; a
 * path that is not a socket, or another user's socket, is 'exists' and left alone. Named pipes
 * on Windows (`\\.\pipe\NAME`) disappear with their server: nothing to claim there.
 */
import type { Stats } from 'node:fs';
import { lstat, unlink } from 'node:fs/promises';
import { createConnection, type Server } from 'node:net';
import { StrataError } from '../errors.js';

/** How `path` answers a connection: someone listens, nobody does, or nothing is there. */
function probe(path: string): Promise<'live' | 'stale' | 'gone'> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve('live');
    });
    c.once('error', (e: NodeJS.ErrnoException) => {
      c.destroy();
      if (e.code === 'ECONNREFUSED') resolve('stale');
      else if (e.code === 'ENOENT') resolve('gone');
      else if (e.code === 'EAGAIN') resolve('live'); // a listener whose backlog is full
      else reject(e);
    });
  });
}

async function stat(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function inUse(path: string, what: string): StrataError {
  return new StrataError('locked', `Another process is listening on the ${what} ${path}; stop it first, or choose another path.`);
}

function isPipeName(path: string): boolean {
  return process.platform === 'win32' || path.startsWith('\\\\');
}

/**
 * Make `path` free for listen(): remove a stale socket of ours there; refuse ('locked') when a
 * process listens on it, and ('exists') when it is not a socket or not ours. `what` names the
 * socket in messages ("NBD socket", "control socket", ...).
 */
export async function claimSocketPath(path: string, what = 'socket'): Promise<void> {
  if (isPipeName(path)) return;
  // Two rounds at most: the path may be replaced while we look (another server starting).
  for (let round = 0; round < 2; round++) {
    const st = await stat(path);
    if (!st) return;
    if (!st.isSocket()) {
      const kind = st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : 'not a socket';
      throw new StrataError('exists', `${path} exists and is ${kind}, not a socket; it was left alone. Remove it, or choose another path for the ${what}.`);
    }
    let state: 'live' | 'stale' | 'gone';
    try {
      state = await probe(path);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new StrataError('io', `Cannot tell whether a process listens on the ${what} ${path} (${err.code ?? err.message}); remove it if it is stale, or choose another path.`, { cause: e });
    }
    if (state === 'live') throw inUse(path, what);
    if (state === 'gone') return;
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
      throw new StrataError('exists', `The ${what} ${path} is a stale socket of another user (uid ${st.uid}); it was left alone. Remove it, or choose another path.`);
    }
    // Remove it only if it is still the socket we probed.
    const now = await stat(path);
    if (!now) return;
    if (now.ino !== st.ino || now.dev !== st.dev) continue;
    try {
      await unlink(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new StrataError('io', `Cannot remove the stale ${what} ${path}: ${(e as Error).message}`, { cause: e });
      }
    }
    return;
  }
  throw inUse(path, what);
}

/**
 * Listen on the Unix socket `path` (or Windows named pipe) after claiming it (claimSocketPath).
 * EADDRINUSE here (a server that bound it in the meantime) is 'locked'; other failures 'io'.
 */
export async function listenOnSocket(server: Server, path: string, what = 'socket'): Promise<void> {
  await claimSocketPath(path, what);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      reject(e.code === 'EADDRINUSE' ? inUse(path, what) : new StrataError('io', `Cannot listen on the ${what} ${path}: ${e.message}`, { cause: e }));
    };
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
