/**
 * The Node side of WebSocket replication (`ws` over http, or https with `tls`): pages and Node
 * clients connect with ./websocket.ts. Same rules as TCP (./tcp.ts): plain `ws://` only on
 * loopback, TLS 1.3, every connection proves the token before `onLink` sees it, a bounded number
 * authenticating at once and a few KiB each before the proof.
 *
 * Browsers: a page of any origin can open a WebSocket to any address, loopback included, and
 * the browser then sends its `Origin`. Such a connection is refused (403) unless its origin is
 * listed in `origins`; clients that are not browsers send no Origin and are judged by the token
 * alone.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { StrataError } from '../../errors.js';
import type { Link } from '../../consistency/link.js';
import { PRE_AUTH_BYTES, secureLink, trackedLink } from './secure.js';
import { MAX_PENDING, type ListenReplicaOptions, type ReplicaServer } from './tcp.js';
import { hostPort, refusePlain } from './url.js';
import { MAX_WS_MESSAGE, webSocketLink, type WebSocketLike } from './websocket.js';

export interface ListenReplicaWsOptions extends ListenReplicaOptions {
  /** the WebSocket's path (default '/replica') */
  path?: string;
  /** page origins allowed to connect (e.g. 'https://app.example'), or a test of one; default none */
  origins?: readonly string[] | ((origin: string) => boolean);
}

export const DEFAULT_WS_PATH = '/replica';

function reject(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length + 1}\r\n\r\n${text}\n`);
  socket.destroy();
}

/** Accept replication links over WebSocket on `host:port` at `path`. */
export async function listenReplicaWs(options: ListenReplicaWsOptions): Promise<ReplicaServer> {
  const host = options.host ?? '127.0.0.1';
  if (!options.tls) refusePlain(host, 'server', 'wss');
  if (typeof options.token !== 'string' || options.token.length < 16) throw new StrataError('invalid-argument', 'A replication listener needs a token of at least 16 characters (from the environment or a 0600 file).');
  const path = options.path ?? DEFAULT_WS_PATH;
  const allowed = options.origins;
  const listed = new Set((typeof allowed === 'function' ? [] : (allowed ?? [])).map((o) => o.toLowerCase()));
  const originAllowed = (o: string) => (typeof allowed === 'function' ? allowed(o) : listed.has(o.toLowerCase()));
  const maxPending = options.maxPending ?? MAX_PENDING;
  const authTimeoutMs = options.authTimeoutMs ?? 10_000;
  const sockets = new Set<Duplex>();
  const authenticating = new Set<WebSocket>();
  const links = new Set<Link>();
  let pending = 0;
  let closing = false;

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE, perMessageDeflate: false, clientTracking: false });
  const server: HttpServer = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.3', handshakeTimeout: authTimeoutMs, requestTimeout: authTimeoutMs })
    : createHttpServer({ requestTimeout: authTimeoutMs });
  server.on('request', (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', upgrade: 'websocket', connection: 'close' });
    res.end('This is a stratadisk replica server: connect with a WebSocket.\n');
  });
  server.on('tlsClientError', (e: Error, socket: Duplex & { remoteAddress?: string; remotePort?: number }) => {
    options.onRefused?.(`TLS handshake failed: ${e.message}`, hostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0));
    socket.destroy();
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const remote = hostPort(req.socket.remoteAddress ?? '?', req.socket.remotePort ?? 0);
    socket.on('error', () => {});
    const refuse = (status: number, text: string, why: string) => {
      options.onRefused?.(why, remote);
      reject(socket, status, text);
    };
    let pathname: string;
    try {
      pathname = new URL(req.url ?? '', 'http://x').pathname;
    } catch {
      return refuse(400, 'Bad Request', 'a malformed request path');
    }
    if (pathname !== path) return refuse(404, 'Not Found', `a WebSocket to ${pathname.slice(0, 200)}, not ${path}`);
    const origin = req.headers.origin;
    if (origin !== undefined && !originAllowed(origin)) return refuse(403, 'Forbidden', `a page of origin ${origin.slice(0, 200)} (not allowed: list it in origins)`);
    if (closing) return refuse(503, 'Service Unavailable', 'the server is closing');
    if (pending >= maxPending) return refuse(503, 'Service Unavailable', `too many connections (${maxPending}) are authenticating`);
    pending++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let received = head.length;
    const count = (chunk: Buffer) => {
      received += chunk.length;
      if (received > PRE_AUTH_BYTES + 1024) {
        socket.off('data', count);
        options.onRefused?.(`it sent over ${PRE_AUTH_BYTES} bytes before authenticating`, remote);
        socket.destroy();
      }
    };
    const stopGuard = () => socket.off('data', count);
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.on('data', count);
      authenticating.add(ws);
      secureLink(webSocketLink(ws as unknown as WebSocketLike), 'server', options, stopGuard).then(
        (link) => {
          pending--;
          authenticating.delete(ws);
          stopGuard();
          if (closing) return link.close();
          options.onLink(trackedLink(link, links), remote);
        },
        (e: unknown) => {
          pending--;
          authenticating.delete(ws);
          stopGuard();
          ws.terminate();
          options.onRefused?.(e instanceof Error ? e.message : String(e), remote);
        },
      );
    });
  });
  await new Promise<void>((resolve, rejectListen) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') rejectListen(new StrataError('exists', `Port ${options.port ?? 0} on ${host} is in use; choose another (--port).`, { cause: e }));
      else rejectListen(new StrataError('io', `Cannot listen on ${hostPort(host, options.port ?? 0)}: ${e.message}`, { cause: e }));
    });
    server.listen(options.port ?? 0, host, () => resolve());
  });
  server.on('error', () => {});
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `${options.tls ? 'wss' : 'ws'}://${hostPort(host, port)}${path}`,
    async close() {
      closing = true;
      for (const l of [...links]) l.close();
      for (const ws of authenticating) ws.terminate();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      // links closed above finish their close handshake; a peer that never answers is cut
      const grace = setTimeout(() => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
      }, 1000);
      await closed;
      clearTimeout(grace);
      wss.close();
    },
  };
}
