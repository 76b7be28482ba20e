/**
 * Who is at the other end of a local socket (Node): the control socket and a consistency
 * group's socket admit only processes of the server's own user.
 *
 * Why not SO_PEERCRED: Linux tells a Unix socket server the peer's uid (SO_PEERCRED), BSDs and
 * macOS have getpeereid(), but Node exposes neither, and a native addon for one check is not
 * worth its build. The socket's mode (0600, ./unix-socket.ts) already keeps other users from
 * connecting on Linux; this is the check that does not depend on the platform honouring it.
 *
 * The equivalent: a secret only the server's user can read. The server keeps 32 random bytes
 * in a file `key` (0600) in its socket's private directory (0700, ./unix-socket.ts), new for
 * every start. On each connection it sends a fresh nonce and the key file's name (relative to
 * the socket's directory); the client must show it could read the file by answering with
 * HMAC-SHA256(key, "client", server nonce, client nonce). Reading the file takes being its
 * owner (or root, who can do anything on the machine anyway), so a valid answer is proof of the
 * server's uid, as SO_PEERCRED would give. The server answers in turn with
 * HMAC-SHA256(key, "server", ...) and the client sends its request only after checking it, so
 * a socket planted by someone else (in a directory others can write) learns nothing. The
 * client also refuses a key file, or its directory, that is a symbolic link or that is not
 * owned by the client's own user: both ends run as one user. Nonces are fresh on both sides,
 * so an answer seen once is useless again; comparisons are constant-time (timingSafeEqual).
 *
 * On the wire, before the protocol proper, one JSON line each way:
 *   server: {"type":"auth","scheme":"hmac-sha256-1","nonce":HEX,"key":"NAME.XXXXXX/key"}
 *   client: {"op":"auth","nonce":HEX,"proof":HEX}
 *   server: {"type":"auth-ok","proof":HEX}   or   {"type":"error","code":"permission-denied",...}
 * An older client that sends its request at once gets that error line (the control protocol's
 * own error message), so it says why instead of hanging.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { StrataError } from '../errors.js';
import type { SocketListening } from './unix-socket.js';

export const AUTH_SCHEME = 'hmac-sha256-1';
const KEY_BYTES = 32;
const NONCE_BYTES = 32;
/** A handshake line is short; anything longer is not ours. */
const MAX_LINE = 1024;
/** How long a peer may take to answer its part of the handshake (server and client). */
const HANDSHAKE_MS = 30_000;

/** The server side's secret: the key and its file's name relative to the socket's directory. */
export interface SocketKey {
  readonly key: Buffer;
  readonly name: string;
}

/**
 * Whether peers on `path` authenticate: Unix sockets do; Windows named pipes (no private
 * directory, no file modes to lean on) do not.
 */
export function peerAuthApplies(path: string): boolean {
  return process.platform !== 'win32' && !path.startsWith('\\\\');
}

/**
 * Create the key file (0600, never through a symlink, never over an existing file) in the
 * socket's private directory; null where peers do not authenticate (a Windows pipe).
 */
export async function createSocketKey(listening: SocketListening): Promise<SocketKey | null> {
  if (!listening.privateDir) return null;
  const key = randomBytes(KEY_BYTES);
  const path = join(listening.privateDir, 'key');
  await writeFile(path, key, { mode: 0o600, flag: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0) });
  return { key, name: `${basename(listening.privateDir)}/key` };
}

function mac(key: Buffer, who: 'client' | 'server', serverNonce: Buffer, clientNonce: Buffer): Buffer {
  return createHmac('sha256', key).update(`stratadisk socket auth\0${who}\0`).update(serverNonce).update(clientNonce).digest();
}

function hexBytes(v: unknown, n: number): Buffer | null {
  if (typeof v !== 'string' || v.length !== 2 * n || !/^[0-9a-f]+$/.test(v)) return null;
  return Buffer.from(v, 'hex');
}

/**
 * Read one newline-terminated line from `sock` (raw bytes, before any encoding is set), then
 * give back whatever followed it (sock.unshift) for the protocol proper.
 */
function readLine(sock: Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, line?: string) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('error', onError);
      if (err) reject(err);
      else resolve(line!);
    };
    const onData = (chunk: Buffer | string) => {
      buf = Buffer.concat([buf, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
      // Every handshake line is a JSON object: anything else is refused at once, not waited on.
      if (buf[0] !== 0x7b) return done(new StrataError('invalid-argument', 'The peer sent something other than the authentication.'));
      const nl = buf.indexOf(10);
      if (nl < 0) {
        if (buf.length > MAX_LINE) done(new StrataError('invalid-argument', 'The authentication line is too long.'));
        return;
      }
      sock.pause();
      const rest = buf.subarray(nl + 1);
      done(null, buf.subarray(0, nl).toString('utf8'));
      if (rest.length > 0) sock.unshift(rest);
    };
    const onEnd = () => done(new StrataError('closed', 'The peer closed the connection during authentication.'));
    const onError = (e: Error) => done(e);
    const timer = setTimeout(() => done(new StrataError('timeout', 'The peer did not answer the authentication in time.')), timeoutMs);
    timer.unref?.();
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('close', onEnd);
    sock.once('error', onError);
    sock.resume();
  });
}

function parse(line: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(line) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Server side: challenge a new connection. Resolves true when the peer proved it runs as the
 * server's user (the socket is then paused, ready for the protocol); otherwise the peer was told
 * why (a `permission-denied` error line), the socket is ended, `onRefused` gets the reason, and
 * it resolves false.
 */
export async function acceptPeer(sock: Socket, key: SocketKey | null, what: string, onRefused: (reason: string) => void = () => {}): Promise<boolean> {
  if (!key) return true;
  const serverNonce = randomBytes(NONCE_BYTES);
  const refuse = (reason: string, message: string) => {
    if (!sock.destroyed) sock.end(JSON.stringify({ type: 'error', code: 'permission-denied', message }) + '\n');
    onRefused(`refused a ${what} connection: ${reason}`);
    return false;
  };
  sock.pause();
  sock.write(JSON.stringify({ type: 'auth', scheme: AUTH_SCHEME, nonce: serverNonce.toString('hex'), key: key.name }) + '\n');
  let line: string;
  try {
    line = await readLine(sock, HANDSHAKE_MS);
  } catch (e) {
    sock.destroy();
    const why = e instanceof StrataError && e.code === 'closed' ? "the client hung up without proving it runs as this server's user (another user's client cannot read the key)" : (e as Error).message;
    onRefused(`refused a ${what} connection: ${why}`);
    return false;
  }
  const m = parse(line);
  if (m?.op !== 'auth') {
    return refuse(
      'the client did not authenticate (an older stratadisk, or not a stratadisk client)',
      `This ${what} admits only clients that prove they run as the server's user; use a stratadisk client of the same version as the server.`,
    );
  }
  const clientNonce = hexBytes(m.nonce, NONCE_BYTES);
  const proof = hexBytes(m.proof, 32);
  if (!clientNonce || !proof || !timingSafeEqual(proof, mac(key.key, 'client', serverNonce, clientNonce))) {
    return refuse(
      "the client could not prove it runs as this server's user (wrong key)",
      `Permission denied: this ${what} belongs to another user; only the user who started the server can use it.`,
    );
  }
  sock.write(JSON.stringify({ type: 'auth-ok', proof: mac(key.key, 'server', serverNonce, clientNonce).toString('hex') }) + '\n');
  return true;
}

function denied(what: string, path: string): StrataError {
  return new StrataError('permission-denied', `The ${what} ${path} belongs to another user; only the user who started its server can use it. Run the command as that user.`);
}

/** Read the server's key named `name` (relative to the socket's directory), as this user's own file only. */
async function readKey(socketPath: string, name: string, what: string): Promise<Buffer> {
  const uid = process.getuid?.();
  const parts = name.split('/');
  if (parts.length !== 2 || parts[1] !== 'key' || !parts[0]!.startsWith(`${basename(socketPath)}.`) || !/^[A-Za-z0-9._-]+$/.test(parts[0]!)) {
    throw new StrataError('permission-denied', `The ${what} ${socketPath} named an unexpected key file; it is not a stratadisk server of this user.`);
  }
  const dir = join(dirname(socketPath), parts[0]!);
  try {
    const d = await lstat(dir);
    if (!d.isDirectory() || (uid !== undefined && d.uid !== uid)) throw denied(what, socketPath);
    const fh = await open(join(dir, 'key'), constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    try {
      const st = await fh.stat();
      if (!st.isFile() || (uid !== undefined && st.uid !== uid) || st.size !== KEY_BYTES) throw denied(what, socketPath);
      const { buffer, bytesRead } = await fh.read(Buffer.alloc(KEY_BYTES), 0, KEY_BYTES, 0);
      if (bytesRead !== KEY_BYTES) throw denied(what, socketPath);
      return buffer;
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof StrataError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'ELOOP') throw denied(what, socketPath);
    throw new StrataError('io', `Cannot read the key of the ${what} ${socketPath}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Client side: prove to the server at `socketPath` (connected as `sock`) that we run as its
 * user, and check that it does too. Resolves once both hold (the socket is paused, ready for the
 * protocol); rejects `permission-denied` when either does not, with the server's own message
 * when it refused us.
 */
export async function provePeer(sock: Socket, socketPath: string, what: string): Promise<void> {
  const hello = parse(await readLine(sock, HANDSHAKE_MS));
  if (hello?.type === 'error') throw new StrataError('permission-denied', String(hello.message));
  const serverNonce = hexBytes(hello?.nonce, NONCE_BYTES);
  if (hello?.type !== 'auth' || hello.scheme !== AUTH_SCHEME || !serverNonce || typeof hello.key !== 'string') {
    throw new StrataError('permission-denied', `The ${what} ${socketPath} did not start the authentication this stratadisk expects; its server may be an older version: restart it.`);
  }
  const key = await readKey(socketPath, hello.key, what);
  const clientNonce = randomBytes(NONCE_BYTES);
  sock.write(JSON.stringify({ op: 'auth', nonce: clientNonce.toString('hex'), proof: mac(key, 'client', serverNonce, clientNonce).toString('hex') }) + '\n');
  const answer = parse(await readLine(sock, HANDSHAKE_MS));
  if (answer?.type === 'error') throw new StrataError('permission-denied', String(answer.message));
  const proof = hexBytes(answer?.proof, 32);
  if (answer?.type !== 'auth-ok' || !proof || !timingSafeEqual(proof, mac(key, 'server', serverNonce, clientNonce))) {
    throw new StrataError('permission-denied', `The ${what} ${socketPath} could not prove it is served by this user's stratadisk; nothing was sent to it.`);
  }
}
