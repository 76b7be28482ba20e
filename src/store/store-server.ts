import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { isStrataError, StrataError, type ErrorCode } from '../errors.js';
import { NodeDirNamespace } from './node-dir.js';
import { RECORD_HEAD } from './remote.js';
import { checkName, NAME_PATTERN, type NamespaceLock, type Store } from './store.js';

/**
 * The store server: a directory's namespace (and those of its direct subdirectories) over HTTP,
 * for {@link RemoteNamespace} clients (src/store/remote.ts has the wire protocol). Everything a
 * request carries is untrusted: the path is at most one plain name (NAME_PATTERN, so never `..`
 * or a separator), store names are checked the same way, bodies are bounded before they are read
 * (`maxBodyBytes`), read answers are bounded (`maxBodyBytes`), every record is checked before
 * any is applied, and the token is compared in constant time. `flush` fsyncs the file.
 */
export interface StoreServerOptions {
  /** default 127.0.0.1 (loopback) */
  host?: string;
  /** default 0: any free port */
  port?: number;
  /** required bearer token; default: a random one (see `token` of the result) */
  token?: string;
  /** largest request body and read answer in bytes (default 64 MiB) */
  maxBodyBytes?: number;
  /** open files kept (default 256; the least recently opened is closed beyond) */
  maxOpenFiles?: number;
}

export interface StoreServer {
  /** http://host:port/ (the token is not in it) */
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
    if (total > maxTotal) throw new StrataError('out-of-range', `A read asks for more than ${maxTotal} bytes in one request; split it.`);
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
  return new StrataError('invalid-argument', `Malformed request: ${what}.`);
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

/** Serve `dir` until `close()`. */
export async function serveStore(dir: string, options: StoreServerOptions = {}): Promise<StoreServer> {
  const token = options.token ?? randomBytes(18).toString('base64url');
  const tokenBytes = Buffer.from(`Bearer ${token}`);
  const maxBody = options.maxBodyBytes ?? 64 << 20;
  const maxOpen = options.maxOpenFiles ?? 256;
  const root = new NodeDirNamespace(dir);
  await root.list(); // the directory must exist (not-found otherwise)
  const spaces = new Map<string, NodeDirNamespace>();
  const files = new Map<string, Store>();
  const leases = new Map<string, NamespaceLock>();

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

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('cross-origin-resource-policy', 'cross-origin');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-methods': 'POST',
        'access-control-allow-headers': 'authorization, content-type',
        'access-control-allow-private-network': 'true',
        'access-control-max-age': '600',
      });
      res.end();
      return;
    }
    if (req.method !== 'POST') throw new StrataError('unsupported', 'The store server answers POST requests from stratadisk clients only.');
    const auth = Buffer.from(req.headers.authorization ?? '');
    if (auth.length !== tokenBytes.length || !timingSafeEqual(auth, tokenBytes)) {
      req.resume();
      sendJson(res, 401, { code: 'invalid-argument', message: 'Wrong or missing token; pass the token serve-store printed.' });
      return;
    }
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
        const size = Number(q.get('size'));
        const s = await file(seg, name, false);
        await s.truncate(size);
        return sendJson(res, 200, { size: s.size });
      }
      case 'lock': {
        const lease = randomUUID();
        leases.set(lease, await ns.lock());
        return sendJson(res, 200, { lease });
      }
      case 'unlock': {
        const lease = q.get('lease') ?? '';
        const l = leases.get(lease);
        leases.delete(lease);
        await l?.release();
        return sendJson(res, 200, {});
      }
      default:
        throw bad(`unknown op "${op.slice(0, 40)}"`);
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const code: ErrorCode = isStrataError(e) ? e.code : 'io';
      const message = e instanceof Error ? e.message : String(e);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, STATUS[code] ?? 500, { code, message });
      // a body we stopped reading: do not let the client keep sending it
      if (!req.complete) req.destroy();
    });
  });
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const host = options.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    port,
    token,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      for (const s of files.values()) await s.close().catch(() => {});
      files.clear();
      for (const l of leases.values()) await l.release().catch(() => {});
      leases.clear();
    },
  };
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/** The request body, refused with `out-of-range` (413) as soon as it exceeds `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
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
