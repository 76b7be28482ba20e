/**
 * Replication over TCP, or TLS over TCP (Node only): `tcp://host:port` on loopback, and
 * `tls://host:port` anywhere. Frames as on the local socket (src/consistency/framing.ts, via
 * socketLink); every connection proves the shared token both ways (./auth.ts) before it is
 * handed over, and carries heartbeats (./heartbeat.ts) so a peer whose machine vanished is
 * noticed in seconds, not after TCP's minutes.
 *
 * Secure by default: plain TCP is refused on any address other than loopback (a listener and a
 * client alike), TLS is 1.3 only, and the client verifies the server's certificate (the CA given,
 * or the system's). A peer may send at most a few KiB before its proof checks out, and only a
 * bounded number of connections may be authenticating at once.
 */
import { createConnection, createServer as createTcpServer, isIP, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { StrataError } from '../../errors.js';
import type { Link } from '../../consistency/link.js';
import { socketLink } from '../../consistency/node-socket.js';
import { PRE_AUTH_BYTES, secureLink, trackedLink, type LinkSecurityOptions } from './secure.js';
import { hostPort, parseReplicaUrl, refusePlain } from './url.js';

export interface ReplicaTlsServerOptions {
  /** PEM certificate chain */
  cert: string | Buffer;
  /** PEM private key */
  key: string | Buffer;
}

export interface ListenReplicaOptions extends LinkSecurityOptions {
  /** default 127.0.0.1; any address other than loopback needs `tls` */
  host?: string;
  /** default 0: any free port (see the returned `port`) */
  port?: number;
  tls?: ReplicaTlsServerOptions;
  /** an authenticated link: `remote` is the peer's address:port */
  onLink(link: Link, remote: string): void;
  /** a connection refused (wrong token, malformed handshake, timeout, too many waiting) */
  onRefused?(reason: string, remote: string): void;
  /** connections that may be authenticating at once (default 32) */
  maxPending?: number;
}

export interface ReplicaServer {
  /** the port listened on */
  readonly port: number;
  /** the URL clients connect to (tcp://, tls://, ws:// or wss://) */
  readonly url: string;
  /** stop listening and close every link this server handed over */
  close(): Promise<void>;
}

export interface ConnectReplicaOptions extends LinkSecurityOptions {
  /** PEM CA certificate(s) that signed the server's certificate (default: the system's) */
  ca?: string | Buffer | (string | Buffer)[];
  /** the name the server's certificate must carry (default: the URL's host name) */
  servername?: string;
  /** time to connect (TCP and TLS) (default 10 s) */
  connectTimeoutMs?: number;
}

export const MAX_PENDING = 32;
const CONNECT_TIMEOUT_MS = 10_000;
const CLOSE_GRACE_MS = 1000;

/**
 * Stop counting once the peer's proof checked out; before that, a peer sending more than a
 * handshake's worth of bytes is cut off (so an unauthenticated peer cannot make us buffer a
 * 32 MiB frame).
 */
export function guardPreAuth(socket: Socket, onExceed: () => void): () => void {
  let n = 0;
  const count = (chunk: Buffer) => {
    n += chunk.length;
    if (n > PRE_AUTH_BYTES) {
      socket.off('data', count);
      onExceed();
    }
  };
  socket.on('data', count);
  return () => socket.off('data', count);
}

/**
 * Accept replication links on `host:port` (TCP, or TLS with `tls`). Each connection is
 * authenticated before `onLink` sees it.
 */
export async function listenReplicaTcp(options: ListenReplicaOptions): Promise<ReplicaServer> {
  const host = options.host ?? '127.0.0.1';
  if (!options.tls) refusePlain(host, 'server', 'tls');
  if (typeof options.token !== 'string' || options.token.length < 16) throw new StrataError('invalid-argument', 'A replication listener needs a token of at least 16 characters (from the environment or a 0600 file).');
  const maxPending = options.maxPending ?? MAX_PENDING;
  const authTimeoutMs = options.authTimeoutMs ?? 10_000;
  const sockets = new Set<Socket>();
  const links = new Set<Link>();
  const authenticating = new Set<Socket>();
  let pending = 0;
  let closing = false;

  const onSocket = (socket: Socket) => {
    const remote = hostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    socket.on('error', () => {});
    if (closing || pending >= maxPending) {
      options.onRefused?.(closing ? 'the server is closing' : `too many connections (${maxPending}) are authenticating`, remote);
      socket.destroy();
      return;
    }
    pending++;
    sockets.add(socket);
    authenticating.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setKeepAlive(true, 10_000);
    const raw = socketLink(socket);
    const stopGuard = guardPreAuth(socket, () => {
      options.onRefused?.(`it sent over ${PRE_AUTH_BYTES} bytes before authenticating`, remote);
      socket.destroy();
    });
    secureLink(raw, 'server', options, stopGuard).then(
      (link) => {
        pending--;
        authenticating.delete(socket);
        stopGuard();
        if (closing) return link.close();
        options.onLink(trackedLink(link, links), remote);
      },
      (e: unknown) => {
        pending--;
        authenticating.delete(socket);
        stopGuard();
        socket.destroy();
        options.onRefused?.(e instanceof Error ? e.message : String(e), remote);
      },
    );
  };

  let server: Server;
  if (options.tls) {
    const tlsServer = createTlsServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.3', handshakeTimeout: authTimeoutMs }, onSocket);
    tlsServer.on('tlsClientError', (e, socket) => {
      options.onRefused?.(`TLS handshake failed: ${e.message}`, hostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0));
      socket.destroy();
    });
    server = tlsServer;
  } else {
    server = createTcpServer(onSocket);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new StrataError('exists', `Port ${options.port ?? 0} on ${host} is in use; choose another (--port).`, { cause: e }));
      else if (e.code === 'EACCES') reject(new StrataError('permission-denied', `Not allowed to listen on ${hostPort(host, options.port ?? 0)} (${e.message}); ports below 1024 need privileges.`, { cause: e }));
      else reject(new StrataError('io', `Cannot listen on ${hostPort(host, options.port ?? 0)}: ${e.message}`, { cause: e }));
    });
    server.listen(options.port ?? 0, host, () => resolve());
  });
  server.on('error', () => {});
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `${options.tls ? 'tls' : 'tcp'}://${hostPort(host, port)}`,
    async close() {
      closing = true;
      for (const l of [...links]) l.close();
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of authenticating) s.destroy();
      // links closed above end their sockets after what was sent; a peer that never answers is cut
      const grace = setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, CLOSE_GRACE_MS);
      await closed;
      clearTimeout(grace);
    },
  };
}

const UNTRUSTED = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED']);

/** The StrataError for a failed connection to `url`. */
export function connectError(e: NodeJS.ErrnoException, url: string): StrataError {
  const code = e.code ?? '';
  if (UNTRUSTED.has(code)) return new StrataError('untrusted', `The replica server at ${url} presented a certificate we do not trust (${e.message}); give the CA that signed it (ca), or the name it carries (servername).`, { cause: e });
  if (code === 'ECONNREFUSED') return new StrataError('not-found', `Nothing listens at ${url}; start the replica server (stratadisk serve-replica) there first.`, { cause: e });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new StrataError('not-found', `The host of ${url} is not known (${e.message}).`, { cause: e });
  return new StrataError('io', `Cannot connect to ${url}: ${e.message}`, { cause: e });
}

/** Connect to a replica server at `tcp://host:port` (loopback only) or `tls://host:port`, and authenticate. */
export async function connectReplicaTcp<Out = unknown>(url: string, options: ConnectReplicaOptions): Promise<Link<Out>> {
  const { scheme, host, port } = parseReplicaUrl(url, ['tcp', 'tls']);
  if (scheme === 'tcp') refusePlain(host, 'client', 'tls');
  if (typeof options.token !== 'string' || options.token.length < 16) throw new StrataError('invalid-argument', 'Connecting to a replica server needs a token of at least 16 characters (from the environment or a 0600 file).');
  const where = `${scheme}://${hostPort(host, port)}`;
  const timeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s: Socket =
      scheme === 'tls'
        ? tlsConnect({ host, port, ca: options.ca, servername: options.servername ?? (isIP(host) ? undefined : host), minVersion: 'TLSv1.3', rejectUnauthorized: true })
        : createConnection({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new StrataError('timeout', `No answer from ${where} within ${timeoutMs} ms.`));
    }, timeoutMs);
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      s.destroy();
      reject(connectError(e, where));
    });
    s.once(scheme === 'tls' ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
  });
  socket.on('error', () => {});
  socket.setKeepAlive(true, 10_000);
  const raw = socketLink(socket);
  const stopGuard = guardPreAuth(socket, () => socket.destroy());
  try {
    return await secureLink<Out>(raw, 'client', options, stopGuard);
  } finally {
    stopGuard();
  }
}
