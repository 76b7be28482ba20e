import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP } from 'node:net';
import { StrataError } from '../errors.js';
import { certificateNames, hostOf } from '../store/store-server.js';
import { isLoopback } from '../util/loopback.js';
import type { EdgeHandler } from './handler.js';

/**
 * The edge handler under Node's http/https (`stratadisk serve-edge`). Loopback only unless TLS
 * is given (or `insecure`); the Host header must name this server (an IP address, localhost,
 * the listen address, a name of the certificate or of `allowHosts`), so a DNS-rebinding page
 * cannot read a loopback server through a name of its own.
 */
export interface EdgeServerOptions {
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** allow plain HTTP on an address other than loopback */
  insecure?: boolean;
  allowHosts?: readonly string[];
  maxConnections?: number;
  onError?: (e: unknown) => void;
}

export interface EdgeServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function serveEdge(handler: EdgeHandler, options: EdgeServerOptions = {}): Promise<EdgeServer> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host) && !options.tls && !options.insecure) {
    throw new StrataError('invalid-argument', `Serving on ${host} in plain HTTP lets anyone on the network path change the bytes a client boots: give a certificate and key (TLS), or allow plain HTTP explicitly (insecure; only on a network you trust).`);
  }
  const hostNames = new Set(['localhost', host.toLowerCase(), ...(options.allowHosts ?? []).map((h) => h.toLowerCase()), ...(options.tls ? certificateNames(options.tls.cert) : [])]);
  const scheme = options.tls ? 'https' : 'http';
  let origin = '';

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    answer(req, res).catch((e: unknown) => {
      options.onError?.(e);
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
        res.end('Internal error.\n');
      }
    });
  };

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const name = hostOf(req.headers.host);
    if (name === null || (isIP(name) === 0 && !hostNames.has(name))) {
      res.writeHead(421, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end('This server does not answer for that host name.\n');
      return;
    }
    const path = req.url ?? '';
    const method = req.method ?? 'GET';
    if (!path.startsWith('/') || !/^[A-Z]{1,16}$/.test(method) || method === 'CONNECT' || method === 'TRACE' || method === 'TRACK') {
      res.writeHead(method === 'GET' || method === 'HEAD' ? 404 : 405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET, HEAD, OPTIONS' });
      res.end();
      return;
    }
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const headers = new Headers();
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      try {
        headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      } catch {
        // a header Fetch refuses is one the handler does not read
      }
    }
    const request = new Request(origin + path, { method, headers, signal: abort.signal });
    const response = await handler(request);
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (!response.body || method === 'HEAD') {
      await response.body?.cancel();
      res.end();
      return;
    }
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (res.destroyed) throw new Error('the client went away');
        if (!res.write(value)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
      }
      res.end();
    } catch {
      // the body could not be finished (the handler has logged why, or the client left): cut the
      // connection, so the client sees a short body (an error), never wrong bytes
      await reader.cancel().catch(() => undefined);
      res.destroy();
    }
  }

  const timeouts = { requestTimeout: 120_000, headersTimeout: 20_000, keepAliveTimeout: 5_000 };
  const server: Server = options.tls
    ? createHttpsServer({ ...timeouts, cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, onRequest)
    : createHttpServer(timeouts, onRequest);
  server.maxConnections = options.maxConnections ?? 256;
  server.setTimeout(120_000);
  server.on('clientError', (_e, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  origin = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url: `${origin}/`,
    port,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
