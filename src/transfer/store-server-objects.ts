/**
 * The object area of the store server (`stratadisk serve-store DIR`): an ObjectStore over HTTP,
 * so that a published image (README.md in this folder) can live on the server. It is a route
 * the server is given (`StoreServerOptions.routes`), so the store layer never imports this one.
 *
 * Where: URLs under `/.objects/` (NAME_PATTERN refuses a leading '.', so no namespace can be
 * called that) and, on disk, the directory `DIR/.objects/` (a DirObjectStore: atomic puts,
 * files 0600, directories 0700, no symbolic link followed), made when the first object is put.
 * No namespace can reach it: the root namespace lists and opens only names NAME_PATTERN allows,
 * and subdirectory namespaces are such names too. A symbolic link at `DIR/.objects` is refused.
 *
 * Wire protocol (after the server's Host, origin and bearer-token checks; errors are JSON
 * `{code, message}` with a 4xx/5xx status and name no server path):
 * - `GET /.objects/KEY` -> the object (200), or with `Range: bytes=A-B` / `bytes=A-` its bytes
 *   A..B (206, `Content-Range: bytes A-B/SIZE`); 416 with `Content-Range: bytes * /SIZE` when A
 *   is at or past the end; 404 when missing. An answer is at most `maxBodyBytes` of the server
 *   (a larger object or range is refused with `out-of-range`: read it in ranges).
 * - `HEAD /.objects/KEY` -> 200 with Content-Length = size and Last-Modified, or 404.
 * - `PUT /.objects/KEY` (body: the object, at most `maxBodyBytes`, refused before it is read
 *   when its Content-Length says more) -> 201 `{written: true}`; with `If-None-Match: *` and an
 *   existing object: 412 `{code: "exists"}` and nothing changes.
 * - `GET /.objects/?list&prefix=P[&after=K][&limit=N]` -> `{objects: [{key, size, modified}],
 *   next: K | null}` in key order, at most N (≤ 1000) per page; ask again with `after=next`.
 * - `POST /.objects/?delete` body `{"keys": [...]}` (at most 1000 keys; all checked first)
 *   -> `{deleted: n}`; a missing key is not an error.
 * Every KEY must match OBJECT_KEY as sent: the path is split as it arrived (no percent-decoding,
 * no dot-segment resolution), and a '%' is refused.
 *
 * Object writes do not take or check the writer lease of any namespace: the object area is not
 * a namespace, its puts are atomic on their own, and publish and gc exclude each other with the
 * layout's own leases (`leases/` objects).
 */
import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { isStrataError, type ErrorCode } from '../errors.js';
import { readBody, sendJson, type StoreServerRoute, type StoreServerRouteContext } from '../store/store-server.js';
import { DirObjectStore } from './dir-objects.js';
import { OBJECT_KEY, type ObjectInfo } from './object-store.js';

/** The first path segment of the object area, and its directory under DIR. */
export const OBJECTS_SEGMENT = '.objects';
/** Largest page of a listing and largest delete request, in keys. */
export const MAX_OBJECT_PAGE = 1000;
/** Largest key (as OBJECT_KEY's users check it). */
export const MAX_KEY_CHARS = 1024;
/** Largest delete body: 1000 keys of 1024 characters, quoted, with commas. */
const MAX_DELETE_BODY = MAX_OBJECT_PAGE * (MAX_KEY_CHARS + 3) + 64;
/** How long, and how many, walked listings are kept for their next pages. */
const LISTING_TTL_MS = 60_000;
const MAX_LISTINGS = 4;
/** Listings longer than this are walked again for each page (memory: at most 4 × 100,000 entries). */
const MAX_LISTING_KEYS = 100_000;
/** A prefix or `after` of a listing: what a key may hold, possibly cut anywhere. */
const PARTIAL_KEY = /^[A-Za-z0-9._@/-]{0,1024}$/;

const STATUS: Partial<Record<ErrorCode, number>> = {
  'invalid-argument': 400,
  'out-of-range': 413,
  'not-found': 404,
  exists: 412,
  'unsafe-path': 403,
  unsupported: 405,
  quota: 507,
};

/** A refusal whose message was written for the client. */
class Refusal extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

function checkKey(key: string): string {
  if (key.length === 0 || key.length > MAX_KEY_CHARS || !OBJECT_KEY.test(key)) {
    throw new Refusal('invalid-argument', `Object key ${JSON.stringify(key.slice(0, 80))} is not allowed: letters, digits, '.', '_', '-', '@' in '/'-separated segments (no '.' or '..' segment, at most ${MAX_KEY_CHARS} characters, no percent-encoding).`);
  }
  return key;
}

/** The object area of the store server: pass it in `serveStore(dir, { routes: [storeObjectArea()] })`. */
export function storeObjectArea(): StoreServerRoute {
  let opened: { dir: string; store: Promise<DirObjectStore> } | undefined;
  /**
   * The listing a first page walked, by prefix, for the pages after it: a directory walk per page
   * would make a listing of N keys cost N²/1000 lstat calls. A continuation sees the objects as
   * they were at its first page (as one DirObjectStore.list call does); a first page always walks.
   */
  const listings = new Map<string, { keys: ObjectInfo[]; expires: number }>();

  /** The area's store; `null` when it was never made and `create` is false. */
  const area = async (ctx: StoreServerRouteContext, create: boolean): Promise<DirObjectStore | null> => {
    const path = join(ctx.dir, OBJECTS_SEGMENT);
    let st: Stats | null = null;
    try {
      st = await lstat(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (st?.isSymbolicLink()) throw new Refusal('unsafe-path', 'The object area of this server is a symbolic link; the server does not follow it.');
    if (st !== null && !st.isDirectory()) throw new Refusal('unsafe-path', 'The object area of this server is not a directory; the server does not use it.');
    if (st === null && !create) return null;
    if (st === null) opened = undefined; // removed since: make it again
    if (!opened || opened.dir !== path) opened = { dir: path, store: DirObjectStore.open(path, { create: true }) };
    try {
      return await opened.store;
    } catch (e) {
      opened = undefined;
      throw e;
    }
  };

  async function handle(req: IncomingMessage, res: ServerResponse, ctx: StoreServerRouteContext): Promise<void> {
    if (req.headers.origin !== undefined) res.setHeader('access-control-expose-headers', 'content-range, content-length, last-modified');
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    const rest = path.slice(1 + OBJECTS_SEGMENT.length);
    const method = req.method ?? 'GET';
    if (rest === '' || rest === '/') {
      if (method === 'GET' && query.has('list')) return list(res, ctx, query);
      if (method === 'POST' && query.has('delete')) return remove(req, res, ctx);
      throw new Refusal('unsupported', 'The object area answers GET ?list and POST ?delete; objects are at /.objects/KEY.');
    }
    if (rest[0] !== '/') throw new Refusal('invalid-argument', 'Objects are at /.objects/KEY.');
    const given = rest.slice(1);
    if (given.includes('%')) throw new Refusal('invalid-argument', `Object key ${JSON.stringify(given.slice(0, 80))} is not allowed: keys are sent as they are, without percent-encoding.`);
    const key = checkKey(given);
    if (method === 'PUT') return put(req, res, ctx, key);
    req.resume(); // no body expected; drain whatever came
    if (method === 'GET') return get(req, res, ctx, key);
    if (method === 'HEAD') return head(res, ctx, key);
    throw new Refusal('unsupported', `The object area answers GET, HEAD and PUT of an object, not ${method.slice(0, 20)}.`);
  }

  async function get(req: IncomingMessage, res: ServerResponse, ctx: StoreServerRouteContext, key: string): Promise<void> {
    const store = await area(ctx, false);
    const range = req.headers.range;
    if (range === undefined) {
      // one open file: the answer is one version of the object, read in one go, bounded
      const data = store && (await store.get(key, { offset: 0, length: ctx.maxBodyBytes + 1 }));
      if (!data) throw new Refusal('not-found', `No object ${key} here.`);
      if (data.length > ctx.maxBodyBytes) throw new Refusal('out-of-range', `Object ${key} is larger than this server's answer limit of ${ctx.maxBodyBytes} bytes; read it in ranges.`);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(data.length), 'cache-control': 'no-store' });
      res.end(data);
      return;
    }
    const m = /^bytes=(\d{1,16})-(\d{1,16})?$/.exec(range.trim());
    if (!m) throw new Refusal('invalid-argument', 'Range: give one range, bytes=FIRST-LAST or bytes=FIRST-.');
    const first = Number(m[1]);
    const last = m[2] === undefined ? Infinity : Number(m[2]);
    if (!Number.isSafeInteger(first) || last < first) throw new Refusal('invalid-argument', 'Range: give bytes=FIRST-LAST with FIRST ≤ LAST.');
    const info = store && (await store.head(key));
    if (!store || !info) throw new Refusal('not-found', `No object ${key} here.`);
    if (first >= info.size) {
      res.writeHead(416, { 'content-range': `bytes */${info.size}`, 'content-length': '0' });
      res.end();
      return;
    }
    const length = Math.min(last, info.size - 1) - first + 1;
    if (length > ctx.maxBodyBytes) throw new Refusal('out-of-range', `A range of ${length} bytes is over this server's answer limit of ${ctx.maxBodyBytes} bytes; ask for smaller ranges.`);
    const data = await store.get(key, { offset: first, length });
    if (!data) throw new Refusal('not-found', `No object ${key} here.`);
    res.writeHead(206, {
      'content-type': 'application/octet-stream',
      'content-length': String(data.length),
      'content-range': `bytes ${first}-${first + data.length - 1}/${Math.max(info.size, first + data.length)}`,
      'cache-control': 'no-store',
    });
    res.end(data);
  }

  async function head(res: ServerResponse, ctx: StoreServerRouteContext, key: string): Promise<void> {
    const store = await area(ctx, false);
    const info = store && (await store.head(key));
    if (!info) {
      res.writeHead(404, { 'content-length': '0' });
      res.end();
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(info.size),
      ...(info.modified !== undefined ? { 'last-modified': new Date(info.modified).toUTCString() } : {}),
      'cache-control': 'no-store',
    });
    res.end();
  }

  async function put(req: IncomingMessage, res: ServerResponse, ctx: StoreServerRouteContext, key: string): Promise<void> {
    const inm = req.headers['if-none-match'];
    if (inm !== undefined && inm.trim() !== '*') throw new Refusal('invalid-argument', 'If-None-Match: only * (write only when the object does not exist) is understood.');
    let body: Uint8Array;
    try {
      body = await readBody(req, ctx.maxBodyBytes);
    } catch (e) {
      res.setHeader('connection', 'close');
      throw new Refusal('out-of-range', `Object ${key} is over this server's request limit of ${ctx.maxBodyBytes} bytes (serve-store --max-request).`, e);
    }
    const store = await area(ctx, true);
    const wrote = await store!.put(key, body, { ifAbsent: inm !== undefined });
    if (!wrote) throw new Refusal('exists', `Object ${key} exists already; it was left as it is.`);
    sendJson(res, 201, { written: true });
  }

  async function list(res: ServerResponse, ctx: StoreServerRouteContext, query: URLSearchParams): Promise<void> {
    const prefix = query.get('prefix') ?? '';
    const after = query.get('after') ?? '';
    const limitText = query.get('limit') ?? String(MAX_OBJECT_PAGE);
    if (!PARTIAL_KEY.test(prefix) || !PARTIAL_KEY.test(after)) throw new Refusal('invalid-argument', 'A listing\'s prefix and after are parts of object keys (at most 1024 characters of letters, digits, ._@-/).');
    if (!/^[0-9]{1,4}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > MAX_OBJECT_PAGE) throw new Refusal('invalid-argument', `A listing's limit is 1 to ${MAX_OBJECT_PAGE}.`);
    const limit = Number(limitText);
    const now = Date.now();
    for (const [k, l] of listings) if (l.expires <= now) listings.delete(k);
    let all = after !== '' ? listings.get(prefix)?.keys : undefined;
    if (!all) {
      const store = await area(ctx, false);
      all = [];
      if (store) for await (const o of store.list(prefix)) all.push({ key: o.key, size: o.size, ...(o.modified !== undefined ? { modified: Math.floor(o.modified) } : {}) });
      if (all.length > limit && all.length <= MAX_LISTING_KEYS) {
        listings.delete(prefix);
        listings.set(prefix, { keys: all, expires: now + LISTING_TTL_MS });
        if (listings.size > MAX_LISTINGS) listings.delete(listings.keys().next().value!);
      }
    }
    // the first key after `after` (keys are sorted)
    let lo = 0;
    for (let hi = all.length; lo < hi; ) {
      const mid = (lo + hi) >>> 1;
      if (all[mid]!.key <= after) lo = mid + 1;
      else hi = mid;
    }
    const objects = all.slice(lo, lo + limit);
    const next = lo + limit < all.length ? objects[objects.length - 1]!.key : null;
    sendJson(res, 200, { objects, next });
  }

  async function remove(req: IncomingMessage, res: ServerResponse, ctx: StoreServerRouteContext): Promise<void> {
    let body: Uint8Array;
    try {
      body = await readBody(req, MAX_DELETE_BODY);
    } catch (e) {
      res.setHeader('connection', 'close');
      throw new Refusal('out-of-range', `A delete request is at most ${MAX_OBJECT_PAGE} keys.`, e);
    }
    let keys: unknown;
    try {
      keys = (JSON.parse(Buffer.from(body).toString('utf8')) as { keys?: unknown }).keys;
    } catch {
      throw new Refusal('invalid-argument', 'A delete request is JSON {"keys": [...]}.');
    }
    if (!Array.isArray(keys) || keys.length > MAX_OBJECT_PAGE || !keys.every((k) => typeof k === 'string')) throw new Refusal('invalid-argument', `A delete request is JSON {"keys": [...]} with at most ${MAX_OBJECT_PAGE} keys.`);
    for (const k of keys as string[]) checkKey(k);
    const store = await area(ctx, false);
    if (store && keys.length > 0) await store.delete(keys as string[]);
    sendJson(res, 200, { deleted: keys.length });
  }

  return {
    segment: OBJECTS_SEGMENT,
    async handle(req, res, ctx) {
      try {
        await handle(req, res, ctx);
      } catch (e) {
        const a = answer(e, ctx);
        if (res.headersSent) {
          res.destroy();
          return;
        }
        // a body we stopped reading: once the answer is out, do not let the client keep sending it
        res.once('finish', () => {
          if (!req.complete) req.destroy();
        });
        if (req.method === 'HEAD') {
          res.writeHead(STATUS[a.code] ?? 500, { 'content-length': '0' });
          res.end();
        } else sendJson(res, STATUS[a.code] ?? 500, a);
      }
    },
  };
}

/** What the client may read about a failure: our refusals as written; others by kind, never with a server path. */
function answer(e: unknown, ctx: StoreServerRouteContext): { code: ErrorCode; message: string } {
  if (e instanceof Refusal) return { code: e.code, message: e.message };
  const errno = errnoOf(e);
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    ctx.onError(e);
    return { code: 'quota', message: 'The server has no space left for objects; free space there, then try again (what was written before stays whole).' };
  }
  if (errno === 'ENAMETOOLONG') return { code: 'invalid-argument', message: 'An object key has a segment longer than the server\'s file system allows (255 bytes).' };
  const code: ErrorCode = isStrataError(e) ? e.code : 'io';
  if (code === 'unsafe-path') return { code, message: 'A directory on the way to this object is a symbolic link or another kind of file on the server; the server does not follow it.' };
  if (code === 'invalid-argument') return { code, message: 'A file on the server stands where a directory of this key must be; use another key.' };
  ctx.onError(e);
  return { code: 'io', message: `The server failed on the object area (${code}); its log has the details.` };
}

function errnoOf(e: unknown): string | undefined {
  for (let c: unknown = e, depth = 0; c !== null && typeof c === 'object' && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return undefined;
}
