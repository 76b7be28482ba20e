/**
 * TLS for the NBD server: the credentials (X.509 certificates or pre-shared keys), how they are
 * read from files in the layouts QEMU, nbdkit and libnbd use, and the upgrade of an accepted
 * socket after NBD_OPT_STARTTLS (node:tls does the cryptography; nothing is hand-written here).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { createSecureContext, createServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { StrataError } from '../../errors.js';

/** X.509: the server's certificate and key; clients are checked against `ca` unless `verifyClient` is false. */
export interface NbdTlsX509 {
  cert: string | Buffer;
  key: string | Buffer;
  /** CA certificate(s) client certificates must chain to. Required unless verifyClient is false. */
  ca?: string | Buffer;
  /**
   * Require a client certificate signed by `ca` (default true, as qemu-nbd's verify-peer).
   * False: any client that completes the TLS handshake may connect (encryption without
   * authentication: whoever reaches the port reads and writes the volume).
   */
  verifyClient?: boolean;
}

/** Pre-shared keys: username → key bytes (the client names its username as the PSK identity). */
export interface NbdTlsPsk {
  psk: ReadonlyMap<string, Buffer>;
}

export type NbdTls = NbdTlsX509 | NbdTlsPsk;

/** What the server uses to upgrade connections (checked once, used for every connection). */
export interface TlsConfig {
  options: TlsOptions;
}

/** A TLS handshake with the client failed (bad credentials, not TLS at all): close the connection. */
export class TlsHandshakeFailed extends Error {
  override name = 'TlsHandshakeFailed';
}

/** TLS 1.2 PSK suites with (EC)DHE (forward secrecy) that GnuTLS clients (qemu, libnbd) offer. */
const PSK_CIPHERS = 'ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384:ECDHE-PSK-AES128-CBC-SHA256:DHE-PSK-AES256-GCM-SHA384:DHE-PSK-AES128-GCM-SHA256:DHE-PSK-CHACHA20-POLY1305';

/** Build the server configuration; throws 'invalid-argument' for missing or unusable pieces. */
export function tlsConfig(tls: NbdTls): TlsConfig {
  let options: TlsOptions;
  if ('psk' in tls) {
    if (tls.psk.size === 0) throw new StrataError('invalid-argument', 'The PSK list is empty: give at least one username:hexkey line.');
    const keys = tls.psk;
    // PSK in TLS 1.2 (OpenSSL's TLS 1.3 PSK needs session-style identities that GnuTLS clients do not send).
    options = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: PSK_CIPHERS, dhparam: 'auto', pskCallback: (_s, identity) => keys.get(identity) ?? null } as TlsOptions;
  } else {
    const verify = tls.verifyClient !== false;
    if (verify && tls.ca === undefined) {
      throw new StrataError('invalid-argument', 'Client certificates are checked against a CA certificate: give one (ca-cert.pem), or turn client verification off explicitly.');
    }
    options = { cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', requestCert: verify, rejectUnauthorized: verify, ...(tls.ca !== undefined ? { ca: tls.ca } : {}) };
  }
  try {
    createSecureContext(options); // fails now, not at the first client, on a bad certificate or key
  } catch (e) {
    throw new StrataError('invalid-argument', `The TLS certificate or key cannot be used: ${(e as Error).message}`, { cause: e });
  }
  return { options };
}

/**
 * Upgrade `socket` (its reader released, nothing of it unread) to TLS as the server, in this
 * turn of the event loop. Resolves once the handshake succeeded and, with X.509 verification,
 * the client's certificate chains to the CA (node:tls's own server-side checks: the socket is
 * handed to a tls.Server that never listens); rejects with TlsHandshakeFailed otherwise.
 */
export function startTls(socket: Socket, config: TlsConfig): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const server = createServer(config.options);
    const fail = (e: Error) => {
      socket.destroy();
      reject(new TlsHandshakeFailed(`TLS handshake failed: ${e.message}`));
    };
    server.once('secureConnection', (secure: TLSSocket) => {
      socket.off('close', onClose);
      resolve(secure);
    });
    server.once('tlsClientError', (e: Error, secure: TLSSocket) => {
      secure.destroy();
      fail(e);
    });
    const onClose = () => fail(new Error('the client closed the connection'));
    socket.once('close', onClose);
    server.emit('connection', socket);
  });
}

/** TLS credentials as JSON for a serving process (sent over its IPC channel, never argv). */
export type WireTls = { cert: string; key: string; ca: string | null; verifyClient: boolean } | { psk: [string, string][] };

export function toWire(tls: NbdTls): WireTls {
  if ('psk' in tls) return { psk: [...tls.psk].map(([u, k]) => [u, k.toString('hex')]) };
  const text = (b: string | Buffer) => (typeof b === 'string' ? b : b.toString('utf8'));
  return { cert: text(tls.cert), key: text(tls.key), ca: tls.ca === undefined ? null : text(tls.ca), verifyClient: tls.verifyClient !== false };
}

export function fromWire(w: WireTls): NbdTls {
  if ('psk' in w) return { psk: new Map(w.psk.map(([u, k]) => [u, Buffer.from(k, 'hex')])) };
  return { cert: w.cert, key: w.key, ...(w.ca !== null ? { ca: w.ca } : {}), verifyClient: w.verifyClient };
}

/**
 * Read a PSK file: lines `username:hexkey` (QEMU tls-creds-psk keys.psk, nbdkit --tls-psk,
 * libnbd tls-psk-file). Blank lines are skipped; anything else malformed is refused, naming the
 * line number only (never the key).
 */
export function readPskFile(path: string): Map<string, Buffer> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new StrataError('not-found', `Cannot read the PSK file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`, { cause: e });
  }
  const keys = new Map<string, Buffer>();
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const colon = line.lastIndexOf(':');
    const user = line.slice(0, colon);
    const hex = line.slice(colon + 1);
    if (colon <= 0 || !/^[0-9a-fA-F]+$/.test(hex) || hex.length % 2 !== 0) {
      throw new StrataError('invalid-argument', `Line ${i + 1} of the PSK file ${path} is not "username:hexkey".`);
    }
    if (hex.length < 32) throw new StrataError('invalid-argument', `The key of line ${i + 1} of the PSK file ${path} is shorter than 128 bits; make one with \`openssl rand -hex 32\`.`);
    keys.set(user, Buffer.from(hex, 'hex'));
  }
  if (keys.size === 0) throw new StrataError('invalid-argument', `The PSK file ${path} holds no "username:hexkey" line.`);
  return keys;
}

/** Whether a file holding a secret can be read by users other than its owner. */
export function readableByOthers(path: string): boolean {
  try {
    return (statSync(path).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}

/**
 * X.509 credentials from a directory in the layout of qemu's tls-creds-x509 (endpoint=server)
 * and nbdkit's --tls-certificates: server-cert.pem, server-key.pem, and ca-cert.pem (needed to
 * check client certificates).
 */
export function readCertificateDir(dir: string, verifyClient: boolean): NbdTlsX509 {
  const read = (name: string, needed: boolean): Buffer | undefined => {
    try {
      return readFileSync(join(dir, name));
    } catch (e) {
      if (!needed) return undefined;
      throw new StrataError('not-found', `Cannot read ${name} in the TLS directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}. It needs server-cert.pem, server-key.pem${verifyClient ? ' and ca-cert.pem (the CA client certificates must chain to)' : ''}.`, { cause: e });
    }
  };
  const cert = read('server-cert.pem', true)!;
  const key = read('server-key.pem', true)!;
  const ca = read('ca-cert.pem', verifyClient);
  return { cert, key, ...(ca ? { ca } : {}), verifyClient };
}
