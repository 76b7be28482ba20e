/**
 * Listening on a Unix socket path (Node), for the NBD server, the control socket and a
 * consistency group's host.
 *
 * Private from birth. A socket's mode would come from the umask (0775 under umask 002: every
 * group member could connect), and chmod after listen() leaves a window. So the socket is bound
 * in a fresh private directory beside the path (`PATH.XXXXXX/s`, made 0700 by mkdtemp), made
 * 0600 there, and only then hard-linked to PATH (link() never replaces anything: a path taken
 * meanwhile is refused, not clobbered). No other user can reach the socket while its mode is
 * wider; at PATH it is 0600 and owned by us, and Linux lets only its owner (and root) connect.
 * The private directory stays while the server listens: it also holds the socket's key for
 * peer authentication (./socket-auth.ts), and libuv unlinks the bound name `s` when the server
 * closes, which must stay a name in a directory no one else can write. Closing removes PATH
 * (if it is still our socket) and the private directory. Process-wide process.umask() is not
 * touched.
 *
 * Left behind. A server that died without closing (kill -9, a crash, a power cut) leaves its
 * socket file behind, and listen() on that path then fails. As qemu-nbd does, a stale socket
 * is removed first — but only when it is certainly stale: it is a socket (never a regular file
 * or anything else), it belongs to this user, and connecting to it is refused (ECONNREFUSED:
 * nothing listens). A socket something answers on is 'locked'; a path that is not a socket, or
 * another user's socket, is 'exists' and left alone. A dead server's private directory (ours,
 * its socket stale) goes with it. Named pipes on Windows (`\\.\pipe\NAME`) disappear with
 * their server: nothing to claim or protect there.
 */
import { lstatSync, rmSync, unlinkSync, type Stats } from 'node:fs';
import { chmod, link, lstat, mkdtemp, readdir, rename, rm, unlink } from 'node:fs/promises';
import { createConnection, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { StrataError } from '../errors.js';

/** The longest socket path the kernel takes (sun_path less its NUL); libuv silently cuts longer ones. */
export const MAX_SOCKET_PATH = process.platform === 'linux' ? 107 : 103;
/** The name of the socket inside its private directory. */
const BOUND_NAME = 's';

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
    if (!st) return removeDeadPrivateDirs(path);
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
    if (state === 'gone') return removeDeadPrivateDirs(path);
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
    return removeDeadPrivateDirs(path);
  }
  throw inUse(path, what);
}

/** `PATH.XXXXXX`: a private directory of a socket at PATH (mkdtemp's six characters). */
function isPrivateDirName(path: string, name: string): boolean {
  const base = basename(path);
  return name.length === base.length + 7 && name.startsWith(`${base}.`) && /^[A-Za-z0-9]{6}$/.test(name.slice(base.length + 1));
}

/**
 * Remove the private directories (`PATH.XXXXXX`) that servers killed while listening at `path`
 * left behind: ours, holding a socket nothing listens on. A directory without a socket may be
 * a server starting right now; it is left alone.
 */
async function removeDeadPrivateDirs(path: string): Promise<void> {
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    if (!isPrivateDirName(path, name)) continue;
    const dir = join(dirname(path), name);
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
    const sock = join(dir, BOUND_NAME);
    if (!(await stat(sock).catch(() => null))?.isSocket()) continue;
    if ((await probe(sock).catch(() => 'live')) !== 'stale') continue;
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

function listenAt(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeQuietly(server: Server): Promise<void> {
  return new Promise((r) => {
    if (!server.listening) return r();
    server.close(() => r());
  });
}

/** Where a socket listens: its path and its private directory (null for a Windows pipe). */
export interface SocketListening {
  readonly path: string;
  readonly privateDir: string | null;
}

/**
 * Listen on the Unix socket `path` (or Windows named pipe) after claiming it (claimSocketPath):
 * bound in a private 0700 directory, made 0600, then linked to `path` (see the top of this
 * file). A process that took `path` in the meantime makes it 'locked'; a path longer than a
 * socket address can hold is 'invalid-argument'; other failures 'io'.
 */
export async function listenOnSocket(server: Server, path: string, what = 'socket'): Promise<SocketListening> {
  if (isPipeName(path)) {
    await listenAt(server, path).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'EADDRINUSE' ? inUse(path, what) : new StrataError('io', `Cannot listen on the ${what} ${path}: ${e.message}`, { cause: e });
    });
    return { path, privateDir: null };
  }
  // The bound name is PATH + 9 bytes; both must fit a socket address.
  const bound = Buffer.byteLength(path) + 9;
  if (bound > MAX_SOCKET_PATH) {
    throw new StrataError('invalid-argument', `The ${what} path ${path} is too long for a Unix socket (${bound} bytes with its private directory, at most ${MAX_SOCKET_PATH}); choose a shorter path.`);
  }
  await claimSocketPath(path, what);
  let priv: string;
  try {
    priv = await mkdtemp(`${path}.`); // mode 0700, whatever the umask
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new StrataError(err.code === 'ENOENT' ? 'not-found' : 'io', `Cannot make a private directory for the ${what} ${path}: ${err.message}`, { cause: e });
  }
  const tmp = join(priv, BOUND_NAME);
  try {
    await listenAt(server, tmp);
    await chmod(tmp, 0o600);
    try {
      await link(tmp, path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw inUse(path, what);
      // A file system without hard links: move it instead, after checking that the path is still free.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK' && code !== 'EXDEV') throw e;
      if (await stat(path)) throw inUse(path, what);
      await rename(tmp, path);
    }
  } catch (e) {
    await closeQuietly(server);
    await rm(priv, { recursive: true, force: true }).catch(() => {});
    if (e instanceof StrataError) throw e;
    throw new StrataError('io', `Cannot listen on the ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
  const ours = lstatSync(path);
  server.once('close', () => {
    // libuv has unlinked `s` by now; PATH goes only if it is still this socket.
    try {
      const now = lstatSync(path);
      if (now.ino === ours.ino && now.dev === ours.dev) unlinkSync(path);
    } catch {
      // already gone
    }
    rmSync(priv, { recursive: true, force: true });
  });
  return { path, privateDir: priv };
}
