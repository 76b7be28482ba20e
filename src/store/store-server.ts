import { randomUUID, timingSafeEqual, X509Certificate } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { isStrataError, StrataError, type ErrorCode } from '../errors.js';
import { isLoopback } from '../util/loopback.js';
import { checkToken, generateToken, registerSecret } from '../util/secret.js';
import { NodeDirNamespace } from './node-dir.js';
import { RECORD_HEAD } from './remote.js';
import { checkName, NAME_PATTERN, type NamespaceLock, type Store } from './store.js';

/**
 * The store server: a directory's namespace (and those of its direct subdirectories) over HTTP
 * or HTTPS, for {@link RemoteNamespace} clients (src/store/remote.ts has the wire protocol).
 * Everything a request carries is untrusted: the path is at most one plain name (NAME_PATTERN,
 * so never `..` or a separator), store names are checked the same way, bodies are bounded before
 * they are read (`maxBodyBytes`), read answers are bounded (`maxBodyBytes`), every record is
 * checked before any is applied, and the token is compared in constant time. `flush` fsyncs.
 *
 * Exposure is deliberate: loopback only unless TLS is given (or `insecure`); the `Host` header
 * must name this server (an IP address, localhost, the listening name, a name of the
 * certificate or of `allowHosts`: a DNS-rebinding page cannot reach it); browsers get CORS
 * answers only for `allowOrigins`. Connections are capped and timed out. The writer lock is a
 * lease: it expires unless renewed, and while it is held every change to its namespace must
 * carry it (else `locked`). Error answers never name server paths, process IDs or host names.
 */
export interface StoreServerOptions {
  /** default 127.0.0.1 (loopback); any other address needs `tls` or `insecure` */
  host?: string;
  /** default 0: any free port */
  port?: number;
  /** required bearer token, at least 128 bits (see checkToken); default: a random one (see `token` of the result) */
  token?: string;
  /** largest request body and read answer in bytes (default 64 MiB) */
  maxBodyBytes?: number;
  /** open files kept (default 256; the least recently opened is closed beyond) */
  maxOpenFiles?: number;
  /** serve HTTPS with this certificate chain and key (PEM) */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** allow plain HTTP on a non-loopback address (anyone on the path reads the data and the token) */
  insecure?: boolean;
  /** origins of web pages allowed to call this server (CORS); default none. A function decides per origin. */
  allowOrigins?: readonly string[] | ((origin: string) => boolean);
  /** host names clients may reach this server by, besides IP addresses, localhost, `host` and the certificate's names */
  allowHosts?: readonly string[];
  /** simultaneous connections (default 128; more are closed at once) */
  maxConnections?: number;
  /** time for a client to send a request's headers, and for a TLS handshake (default 20 s) */
  headersTimeoutMs?: number;
  /** time for a whole request (default 120 s) */
  requestTimeoutMs?: number;
  /** a connection with no traffic for this long is closed (default 120 s; idle keep-alive: 5 s) */
  idleTimeoutMs?: number;
  /** a writer lease expires this long after it was taken or last renewed (default 30 s) */
  leaseMs?: number;
  /** the clock of lease expiry (tests) */
  now?: () => number;
  /** server-side failures (answered 5xx) as they happened, with server paths (the answer to the client has none): the server's log */
  onError?: (error: unknown) => void;
  /**
   * More areas of the server, each under a first path segment that no namespace can have (one
   * NAME_PATTERN refuses, e.g. `.objects`): requests to it get the same Host, origin (CORS),
   * connection and token checks, then go to the route. src/transfer/store-server-objects.ts is
   * one (the object area); the store layer does not know what a route serves.
   */
  routes?: readonly StoreServerRoute[];
}

/** An area of the store server besides its namespaces (see `StoreServerOptions.routes`). */
export interface StoreServerRoute {
  /** the first path segment it answers; must not match NAME_PATTERN */
  readonly segment: string;
  /** answer an authenticated request under `/segment` (its answer, errors included, is the route's own) */
  handle(req: IncomingMessage, res: ServerResponse, context: StoreServerRouteContext): Promise<void>;
  close?(): Promise<void>;
}

export interface StoreServerRouteContext {
  /** the served directory */
  readonly dir: string;
  /** the request body and answer bound of the server */
  readonly maxBodyBytes: number;
  /** the server's log of server-side failures */
  readonly onError: (error: unknown) => void;
}

export interface StoreServer {
  /** http(s)://host:port/ (the token is not in it) */
  readonly url: string;
  readonly port: number;
  readonly token: string;
  close(): Promise<void>;
}

/** Largest number of ranges in one read request. */
export const MAX_READ_RECORDS = 65536;

/** One record of a write body. */
export interface WriteRecord {
  offset: number;
  data: Uint8Array;
}

/** Parse a write body (see remote.ts); every record is checked before any is used. */
export function parseWriteBody(body: Uint8Array): WriteRecord[] {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: WriteRecord[] = [];
  for (let at = 0; at < body.length; ) {
    if (body.length - at < RECORD_HEAD) throw bad(`a write record header at byte ${at} is cut short`);
    const offset = readOffset(dv, at);
    const length = dv.getUint32(at + 8, true);
    at += RECORD_HEAD;
    if (length > body.length - at) throw bad(`a write record at byte ${at} announces ${length} bytes but ${body.length - at} follow`);
    out.push({ offset, data: body.subarray(at, at + length) });
    at += length;
  }
  return out;
}

/** Parse a read body: ranges whose lengths add up to at most `maxTotal`. */
export function parseReadBody(body: Uint8Array, maxTotal: number): { offset: number; length: number }[] {
  if (body.length % RECORD_HEAD !== 0) throw bad(`a read body is a multiple of ${RECORD_HEAD} bytes, not ${body.length}`);
  const n = body.length / RECORD_HEAD;
  if (n > MAX_READ_RECORDS) throw bad(`at most ${MAX_READ_RECORDS} ranges per read, not ${n}`);
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: { offset: number; length: number }[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const offset = readOffset(dv, i * RECORD_HEAD);
    const length = dv.getUint32(i * RECORD_HEAD + 8, true);
    total += length;
    if (total > maxTotal) throw refuse('out-of-range', `A read asks for more than ${maxTotal} bytes in one request; split it.`);
    out.push({ offset, length });
  }
  return out;
}

function readOffset(dv: DataView, at: number): number {
  const offset = dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 2 ** 32;
  if (!Number.isSafeInteger(offset)) throw bad(`offset at byte ${at} is beyond 2^53`);
  return offset;
}

function bad(what: string): StrataError {
  return refuse('invalid-argument', `Malformed request: ${what}.`);
}

/** Errors whose message was written for the client (it names nothing of the server). */
const forClient = new WeakSet<Error>();

function refuse(code: ErrorCode, message: string): StrataError {
  const e = new StrataError(code, message);
  forClient.add(e);
  return e;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  'invalid-argument': 400,
  'out-of-range': 416,
  'not-found': 404,
  exists: 409,
  locked: 423,
  'read-only': 403,
  unsupported: 501,
  quota: 507,
  'unsafe-path': 403,
};

/** Operations that change a namespace: refused without the current lease while one is held. */
const CHANGES = new Set(['write', 'truncate', 'delete', 'sync']);

/** DNS names of a PEM certificate (its subjectAltName), lower case. */
export function certificateNames(cert: string | Buffer): string[] {
  try {
    const san = new X509Certificate(cert).subjectAltName ?? '';
    return san
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p.startsWith('DNS:'))
      .map((p) => p.slice(4).toLowerCase());
  } catch {
    return [];
  }
}

/** The host name of a Host header (no port, no brackets), lower case; null when malformed. */
export function hostOf(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header.trim());
  if (!m) return null;
  return m[1]!.replace(/^\[|\]$/g, '').toLowerCase();
}

interface Lease {
  seg: string;
  lock: NamespaceLock;
  expires: number;
}

/** Serve `dir` until `close()`. */
export async function serveStore(dir: string, options: StoreServerOptions = {}): Promise<StoreServer> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host) && !options.tls && !options.insecure) {
    throw new StrataError(
      'invalid-argument',
      `Serving on ${host} would send the data and the token over the network in clear: give a certificate and key (TLS), or allow plain HTTP explicitly (insecure; only on a network you trust).`,
    );
  }
  const token = options.token ?? generateToken();
  checkToken(token, 'The store server\'s token');
  registerSecret(token);
  const tokenBytes = Buffer.from(`Bearer ${token}`);
  const maxBody = options.maxBodyBytes ?? 64 << 20;
  const maxOpen = options.maxOpenFiles ?? 256;
  const leaseMs = options.leaseMs ?? 30_000;
  const now = options.now ?? Date.now;
  const headersTimeout = options.headersTimeoutMs ?? 20_000;
  const requestTimeout = options.requestTimeoutMs ?? 120_000;
  const idleTimeout = options.idleTimeoutMs ?? 120_000;
  const allowOrigin: (origin: string) => boolean =
    typeof options.allowOrigins === 'function' ? options.allowOrigins : ((list: readonly string[]) => (o: string) => list.includes(o))(options.allowOrigins ?? []);
  const hostNames = new Set(['localhost', host.toLowerCase(), ...(options.allowHosts ?? []).map((h) => h.toLowerCase()), ...(options.tls ? certificateNames(options.tls.cert) : [])]);
  const routes = new Map((options.routes ?? []).map((r) => [r.segment, r]));
  for (const seg of routes.keys()) if (NAME_PATTERN.test(seg) || !/^[!-~]+$/.test(seg) || seg.includes('/')) throw new StrataError('invalid-argument', `A route of the store server may not use "${seg}": a namespace could have that name.`);
  const routeContext: StoreServerRouteContext = { dir, maxBodyBytes: maxBody, onError: (e) => options.onError?.(e) };
  const root = new NodeDirNamespace(dir);
  await root.list(); // the directory must exist (not-found otherwise)
  const spaces = new Map<string, NodeDirNamespace>();
  const files = new Map<string, Store>();
  const leases = new Map<string, Lease>();
  /** namespace -> the lease holding it */
  const holders = new Map<string, string>();

  const space = (seg: string) => {
    if (seg === '') return root;
    let ns = spaces.get(seg);
    if (!ns) {
      ns = new NodeDirNamespace(join(dir, seg), { create: true });
      spaces.set(seg, ns);
    }
    return ns;
  };
  const file = async (seg: string, name: string, create: boolean): Promise<Store> => {
    checkName(name);
    const key = `${seg}/${name}`;
    let s = files.get(key);
    if (s) return s;
    s = await space(seg).open(name, { create });
    if (files.has(key)) {
      await s.close();
      return files.get(key)!;
    }
    files.set(key, s);
    if (files.size > maxOpen) {
      const [oldKey, old] = files.entries().next().value as [string, Store];
      files.delete(oldKey);
      await old.close();
    }
    return s;
  };
  const forget = async (seg: string, name: string) => {
    const key = `${seg}/${name}`;
    const s = files.get(key);
    files.delete(key);
    await s?.close();
  };
  const drop = async (id: string): Promise<void> => {
    const l = leases.get(id);
    if (!l) return;
    leases.delete(id);
    if (holders.get(l.seg) === id) holders.delete(l.seg);
    await l.lock.release().catch((e: unknown) => options.onError?.(e));
  };
  /** Leases not renewed in time end: their namespaces are free again. */
  const sweep = () => {
    const t = now();
    for (const [id, l] of leases) if (l.expires <= t) void drop(id);
  };
  const sweeper = setInterval(sweep, Math.max(50, Math.min(leaseMs / 2, 5_000)));
  sweeper.unref();

  /** The lease a change must carry, when its namespace is held. */
  const checkLease = (seg: string, given: string | null) => {
    const holder = holders.get(seg);
    if (holder !== undefined && given !== holder) {
      throw refuse('locked', 'Another client holds the writer lease of this namespace; changes are refused until it releases it or the lease expires.');
    }
    if (holder === undefined && given !== null && given !== '') {
      throw refuse('locked', 'The writer lease this request carries has expired or was released; the namespace was not changed. Take the lock again.');
    }
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // DNS rebinding: a page of another site must not reach us under its own name.
    const hostName = hostOf(req.headers.host);
    if (hostName === null || (isIP(hostName) === 0 && !hostNames.has(hostName))) {
      req.resume();
      sendJson(res, 421, { code: 'invalid-argument', message: 'This store server is not reachable under that host name; use its address (or start it with --allow-host NAME).' });
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      if (!allowOrigin(origin)) {
        req.resume();
        sendJson(res, 403, { code: 'invalid-argument', message: `Web pages of ${origin.slice(0, 200)} may not use this store server; start it with --allow-origin ${origin.slice(0, 200)} to allow them.` });
        return;
      }
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
      res.setHeader('cross-origin-resource-policy', 'cross-origin');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-methods': routes.size > 0 ? 'POST, GET, HEAD, PUT' : 'POST',
        'access-control-allow-headers': routes.size > 0 ? 'authorization, content-type, range, if-none-match' : 'authorization, content-type',
        ...(origin !== undefined && req.headers['access-control-request-private-network'] === 'true' ? { 'access-control-allow-private-network': 'true' } : {}),
        'access-control-max-age': '600',
      });
      res.end();
      return;
    }
    const route = routes.get((req.url ?? '/').split('?')[0]!.split('/')[1] ?? '');
    if (req.method !== 'POST' && !route) throw refuse('unsupported', 'The store server answers POST requests from stratadisk clients only.');
    const auth = Buffer.from(req.headers.authorization ?? '');
    if (auth.length !== tokenBytes.length || !timingSafeEqual(auth, tokenBytes)) {
      req.resume();
      sendJson(res, 401, { code: 'invalid-argument', message: 'Wrong or missing token; pass the token of serve-store (from its token file).' });
      return;
    }
    if (route) return route.handle(req, res, routeContext);
    const url = new URL(req.url ?? '/', 'http://x');
    // split the path as sent: URL parsing would resolve dot segments before we could refuse them
    const segs = (req.url ?? '/').split('?')[0]!.split('/').filter((s) => s !== '');
    let seg = '';
    if (segs.length > 1) throw bad('the path is at most one name');
    if (segs.length === 1) {
      try {
        seg = decodeURIComponent(segs[0]!);
      } catch {
        throw bad('the path is not valid percent-encoding');
      }
      if (!NAME_PATTERN.test(seg)) throw bad('the path is not a plain name');
    }
    const q = url.searchParams;
    const op = q.get('op') ?? '';
    const name = q.get('name') ?? '';
    let body: Uint8Array;
    try {
      body = await readBody(req, op === 'write' ? maxBody + 64 * 1024 : op === 'read' ? MAX_READ_RECORDS * RECORD_HEAD : 0);
    } catch (e) {
      sendJson(res, 413, { code: 'out-of-range', message: (e as Error).message });
      req.destroy();
      return;
    }
    sweep();
    const lease = q.get('lease');
    if (CHANGES.has(op) || (op === 'open' && q.get('create') === '1')) checkLease(seg, lease);
    const ns = space(seg);
    switch (op) {
      case 'list':
        return sendJson(res, 200, { names: await ns.list() });
      case 'exists':
        return sendJson(res, 200, { exists: await ns.exists(name) });
      case 'delete':
        checkName(name);
        await forget(seg, name);
        await ns.delete(name);
        return sendJson(res, 200, {});
      case 'sync':
        await ns.sync();
        return sendJson(res, 200, {});
      case 'open':
        return sendJson(res, 200, { size: (await file(seg, name, q.get('create') === '1')).size });
      case 'write': {
        const recs = parseWriteBody(body);
        const s = await file(seg, name, false);
        // records that overlap none before them are written in parallel; others wait their turn
        let ios: Promise<void>[] = [];
        let lo = Infinity;
        let hi = -Infinity;
        for (const r of recs) {
          if (r.offset < hi && r.offset + r.data.length > lo) {
            await Promise.all(ios);
            ios = [];
            lo = Infinity;
            hi = -Infinity;
          }
          ios.push(s.write(r.offset, r.data));
          lo = Math.min(lo, r.offset);
          hi = Math.max(hi, r.offset + r.data.length);
        }
        await Promise.all(ios);
        return sendJson(res, 200, { size: s.size });
      }
      case 'read': {
        const ranges = parseReadBody(body, maxBody);
        const s = await file(seg, name, false);
        let total = 0;
        for (const r of ranges) total += r.length;
        const out = Buffer.allocUnsafe(total); // bounded by parseReadBody
        let at = 0;
        const ios: Promise<void>[] = [];
        for (const r of ranges) {
          ios.push(s.readInto(r.offset, out.subarray(at, at + r.length)));
          at += r.length;
        }
        await Promise.all(ios);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
        res.end(out);
        return;
      }
      case 'flush': {
        const s = await file(seg, name, false);
        await s.flush();
        return sendJson(res, 200, { size: s.size });
      }
      case 'truncate': {
        const given = q.get('size') ?? '';
        const size = Number(given);
        if (!/^[0-9]{1,16}$/.test(given) || !Number.isSafeInteger(size)) throw bad('truncate needs size=BYTES (a whole number)');
        const s = await file(seg, name, false);
        await s.truncate(size);
        return sendJson(res, 200, { size: s.size });
      }
      case 'lock': {
        if (holders.has(seg)) throw refuse('locked', 'Another client holds the writer lease of this namespace; try again when it is done (a lease not renewed expires).');
        const lock = await ns.lock();
        const id = randomUUID();
        leases.set(id, { seg, lock, expires: now() + leaseMs });
        holders.set(seg, id);
        return sendJson(res, 200, { lease: id, ttlMs: leaseMs });
      }
      case 'renew': {
        const l = leases.get(lease ?? '');
        if (!l || l.seg !== seg) throw refuse('locked', 'The writer lease expired or was released; take the lock again.');
        l.expires = now() + leaseMs;
        return sendJson(res, 200, { ttlMs: leaseMs });
      }
      case 'unlock': {
        const l = leases.get(lease ?? '');
        if (l && l.seg === seg) await drop(lease!);
        return sendJson(res, 200, {});
      }
      default:
        throw bad(`unknown op "${op.slice(0, 40)}"`);
    }
  }

  /** What a client may read about a failure: our own refusals as written, others without server paths, pids or host names. */
  const answer = (e: unknown, req: IncomingMessage): { code: ErrorCode; message: string } => {
    const code: ErrorCode = isStrataError(e) ? e.code : 'io';
    if (e instanceof Error && forClient.has(e)) return { code, message: e.message };
    const name = new URL(req.url ?? '/', 'http://x').searchParams.get('name') ?? '';
    const what = NAME_PATTERN.test(name) ? `"${name}"` : 'the namespace';
    switch (code) {
      case 'invalid-argument':
        return { code, message: e instanceof Error && /^Store name ".*" is not allowed/.test(e.message) ? e.message.slice(0, 300) : `The request about ${what} is not valid.` };
      case 'not-found':
        return { code, message: `No store ${what} here.` };
      case 'exists':
        return { code, message: `${what} exists already.` };
      case 'locked':
        return { code, message: 'Another writer holds this namespace (a client\'s lease, or a process on the server); try again when it is done.' };
      case 'out-of-range':
        return { code, message: `The request reaches outside what ${what} allows (offset or size).` };
      case 'read-only':
        return { code, message: `${what} is read-only on this server.` };
      case 'quota':
        return { code, message: `The server has no space left for ${what}.` };
      case 'unsafe-path':
        return { code, message: `${what === 'the namespace' ? 'This namespace' : what} is a symbolic link or another kind of file on the server, not one of its own; the server does not follow it.` };
      default:
        return { code, message: `The server failed on ${what} (${code}); its log has the details.` };
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e: unknown) => {
      const a = answer(e, req);
      // the server's log gets what went wrong on its side (a refused or missing name is the client's business)
      if (!(e instanceof Error && forClient.has(e)) && STATUS[a.code] === undefined) options.onError?.(e);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, STATUS[a.code] ?? 500, a);
      // a body we stopped reading: do not let the client keep sending it
      if (!req.complete) req.destroy();
    });
  };
  const timeouts = { requestTimeout, headersTimeout, keepAliveTimeout: Math.min(5_000, idleTimeout), connectionsCheckingInterval: Math.max(10, Math.min(1_000, headersTimeout / 2)) };
  const server: Server = options.tls
    ? createHttpsServer({ ...timeouts, cert: options.tls.cert, key: options.tls.key, handshakeTimeout: headersTimeout, minVersion: 'TLSv1.2' }, onRequest)
    : createHttpServer(timeouts, onRequest);
  server.maxConnections = options.maxConnections ?? 128;
  server.setTimeout(idleTimeout); // no traffic for that long: the socket is destroyed
  server.on('clientError', (_e, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    port,
    token,
    async close() {
      clearInterval(sweeper);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      for (const s of files.values()) await s.close().catch(() => {});
      files.clear();
      for (const l of leases.values()) await l.lock.release().catch(() => {});
      leases.clear();
      holders.clear();
      for (const r of routes.values()) await r.close?.().catch(() => {});
    },
  };
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/** The request body, refused with `out-of-range` (413) as soon as it exceeds `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw new StrataError('out-of-range', `The request body (${declared} bytes) is over this server's limit of ${limit} bytes; send smaller batches.`);
  // With a declared length (bounded above), chunks go straight into one buffer: no second copy.
  const known = declared !== undefined && /^[0-9]+$/.test(declared) ? Number(declared) : -1;
  const into = known > 0 ? Buffer.allocUnsafe(known) : null;
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (n + chunk.length > limit || (into && n + chunk.length > known)) throw new StrataError('out-of-range', `The request body is over this server's limit of ${limit} bytes (or its declared length); send smaller batches.`);
    if (into) into.set(chunk, n);
    else chunks.push(chunk);
    n += chunk.length;
  }
  if (into) return into.subarray(0, n);
  if (chunks.length === 1) return chunks[0]!;
  return Buffer.concat(chunks, n);
}
