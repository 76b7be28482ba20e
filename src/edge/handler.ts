import { isStrataError } from '../errors.js';
import { entityTag, evaluatePreconditions, rangeApplies } from './conditional.js';
import { contentRange, decideRange, unsatisfiedRange } from './range.js';
import { isContentIdRef, parseRoute } from './route.js';
import type { CacheLike, OpenVersion, VersionRef, VersionSource, WaitUntil } from './source.js';

/**
 * The fetch handler that serves published versions (Cloudflare Workers / workerd, and Node
 * through `stratadisk serve-edge`): GET and HEAD of `/IMAGE/TAG` and `/IMAGE/@CONTENTID` with
 * single byte ranges, validators and CORS (README.md in this folder).
 */
export interface EdgeHandlerOptions {
  /** opens a version by tag or content ID (throws StrataError 'not-found' when there is none) */
  open: OpenVersion;
  /**
   * The Workers Cache API (`caches.default`) or anything like it: verified byte spans of a
   * version (keyed by content ID, immutable) and tag → version lookups (short TTL).
   */
  cache?: CacheLike;
  /** max-age of tag URLs and of cached tag lookups, seconds (default 60) */
  tagMaxAge?: number;
  /**
   * Bytes read from the version per step while a body streams (default 4 MiB): a 1 GiB range
   * is served in pieces of this size, `readAhead` in flight, never buffered whole. A range up
   * to this size is one read of the version (one coalesced object read when its chunks lie
   * together): each object read costs a round trip to the bucket.
   */
  pieceBytes?: number;
  /** pieces read at once while a body streams (default 2: at most 8 MiB held per request) */
  readAhead?: number;
  /** byte spans up to this size go to the cache (default 8 MiB; 0: none) */
  cacheMaxBytes?: number;
  /**
   * Which web pages may read the responses (CORS): `'*'` (the default: published images are
   * public and no credentials are involved), a list of origins (the request's Origin is echoed
   * when listed, with `Vary: Origin`), or `[]` for none.
   */
  allowOrigin?: '*' | readonly string[];
  /**
   * Names the store in cached tag lookups (e.g. the binding and prefix), so two workers of one
   * host name over different buckets do not share them. Spans need none: they are keyed by
   * content ID, and looked up only after the version was opened from this store.
   */
  cacheScope?: string;
  /** told when the cache refuses a put (the answer itself is not affected) */
  onCacheError?: (error: unknown) => void;
  /** told about every error that became a 5xx or cut a body short (the message is not sent on) */
  onError?: (error: unknown, request: Request) => void;
}

export type EdgeHandler = (request: Request, ctx?: WaitUntil) => Promise<Response>;

const IMMUTABLE = 'public, max-age=31536000, immutable';
const CACHE_KEY_PARAM = 'stratadisk-span';

export function createEdgeHandler(options: EdgeHandlerOptions): EdgeHandler {
  const tagMaxAge = Math.max(0, Math.floor(options.tagMaxAge ?? 60));
  const pieceBytes = Math.max(4096, Math.floor(options.pieceBytes ?? 4 * 1024 * 1024));
  const readAhead = Math.max(1, Math.min(16, Math.floor(options.readAhead ?? 2)));
  const cacheMaxBytes = Math.max(0, Math.floor(options.cacheMaxBytes ?? 8 * 1024 * 1024));
  const allow = options.allowOrigin ?? '*';
  /** CORS headers for a request from `origin` (none when it may not read the answer) */
  function corsFor(origin: string | null): Record<string, string> {
    let value: string | undefined;
    if (allow === '*') value = '*';
    else if (origin !== null && allow.includes(origin)) value = origin;
    const h: Record<string, string> = {};
    if (allow !== '*') h.Vary = 'Origin';
    if (value === undefined) return h;
    h['Access-Control-Allow-Origin'] = value;
    h['Access-Control-Expose-Headers'] = 'Accept-Ranges, Content-Length, Content-Range, ETag';
    // pages under COEP require-corp (cross-origin isolated, as v86 with SharedArrayBuffer wants) may read it
    h['Cross-Origin-Resource-Policy'] = 'cross-origin';
    return h;
  }
  const cache = options.cache;

  function plain(cors: Record<string, string>, status: number, text: string, extra: Record<string, string> = {}): Response {
    return new Response(`${text}\n`, {
      status,
      headers: { ...cors, 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', ...extra },
    });
  }

  function failure(cors: Record<string, string>, e: unknown, request: Request): Response {
    if (isStrataError(e, 'not-found') || isStrataError(e, 'invalid-argument')) return plain(cors, 404, 'Not found.');
    options.onError?.(e, request);
    if (isStrataError(e) && (e.code === 'corrupt' || e.code === 'checksum-mismatch' || e.code === 'io' || e.code === 'timeout')) {
      return plain(cors, 502, `The published data could not be read intact (${e.code}); nothing of it was sent.`);
    }
    return plain(cors, 500, 'Internal error; nothing of the version was sent.');
  }

  /** tag → content ID through the cache (short TTL), then the version by content ID */
  async function openRef(ref: VersionRef, origin: string, ctx: WaitUntil | undefined, signal: AbortSignal): Promise<VersionSource> {
    if (isContentIdRef(ref) || !cache || tagMaxAge === 0) return options.open(ref, signal);
    const key = new Request(`${origin}/${ref.image}/${ref.tag}?stratadisk-tag=${encodeURIComponent(options.cacheScope ?? '')}`);
    let cached: string | undefined;
    try {
      const hit = await cache.match(key);
      const text = hit ? (await hit.text()).trim() : '';
      if (/^[0-9a-f]{64}$/.test(text)) cached = text;
    } catch {
      cached = undefined; // the cache is an optimisation: a failing one is no cache
    }
    if (cached !== undefined) return options.open({ image: ref.image, contentId: cached }, signal);
    const version = await options.open(ref, signal);
    const put = cache.put(key, new Response(version.contentId, { headers: { 'Cache-Control': `public, max-age=${tagMaxAge}`, 'Content-Type': 'text/plain' } })).catch(() => undefined);
    if (ctx) ctx.waitUntil(put);
    else await put;
    return version;
  }

  return async function handle(request: Request, ctx?: WaitUntil): Promise<Response> {
    const cors = corsFor(request.headers.get('origin'));
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      return plain(cors, 404, 'Not found.');
    }
    const ref = parseRoute(url.pathname);
    if (ref === null) return plain(cors, 404, 'Not found.');
    const method = request.method.toUpperCase();
    if (method === 'OPTIONS') {
      return new Response(null, {
        status: 204,
        headers: {
          ...cors,
          'Access-Control-Allow-Methods': 'GET, HEAD',
          'Access-Control-Allow-Headers': 'Range, If-None-Match, If-Match, If-Range',
          'Access-Control-Max-Age': '86400',
          Allow: 'GET, HEAD, OPTIONS',
        },
      });
    }
    if (method !== 'GET' && method !== 'HEAD') return plain(cors, 405, 'Only GET and HEAD.', { Allow: 'GET, HEAD, OPTIONS' });

    const abort = new AbortController();
    const onAbort = () => abort.abort();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    let version: VersionSource;
    try {
      version = await openRef(ref, url.origin, ctx, abort.signal);
    } catch (e) {
      return failure(cors, e, request);
    }
    if (version.image !== ref.image) return plain(cors, 404, 'Not found.');
    if (isContentIdRef(ref) && version.contentId !== ref.contentId) return plain(cors, 404, 'Not found.');

    const etag = entityTag(version.contentId);
    const size = version.size;
    const headers: Record<string, string> = {
      ...cors,
      'Accept-Ranges': 'bytes',
      ETag: etag,
      'Cache-Control': isContentIdRef(ref) ? IMMUTABLE : `public, max-age=${tagMaxAge}`,
      'Content-Type': 'application/octet-stream',
      'X-Content-Type-Options': 'nosniff',
    };
    const pre = evaluatePreconditions(request.headers, etag);
    if (pre === 'failed') return plain(cors, 412, 'Precondition failed.', { ETag: etag });
    if (pre === 'not-modified') {
      const { 'Content-Type': _, ...h } = headers;
      return new Response(null, { status: 304, headers: h });
    }
    const decision = rangeApplies(request.headers, etag) ? decideRange(request.headers.get('range'), size) : { kind: 'full' as const };
    if (decision.kind === 'unsatisfiable') return plain(cors, 416, 'Range not satisfiable.', { 'Content-Range': unsatisfiedRange(size), ETag: etag, 'Accept-Ranges': 'bytes' });
    const start = decision.kind === 'partial' ? decision.start : 0;
    const end = decision.kind === 'partial' ? decision.end : size;
    const status = decision.kind === 'partial' ? 206 : 200;
    if (status === 206) headers['Content-Range'] = contentRange(start, end, size);
    headers['Content-Length'] = String(end - start);
    if (method === 'HEAD' || end === start) return new Response(method === 'HEAD' ? null : new Uint8Array(0), { status, headers });

    // Verified bytes of this span from the cache, keyed by content ID (so a tag URL hits too).
    const cacheable = cache !== undefined && end - start <= cacheMaxBytes;
    const spanKey = cacheable ? new Request(`${url.origin}/${version.image}/@${version.contentId}?${CACHE_KEY_PARAM}=${start}-${end - 1}`) : undefined;
    if (cache && spanKey) {
      try {
        const hit = await cache.match(spanKey);
        if (hit?.body && hit.status === 200 && hit.headers.get('x-stratadisk-span') === `${start}-${end - 1}`) {
          return new Response(hit.body, { status, headers: { ...headers, 'X-Stratadisk-Cache': 'hit' } });
        }
        await hit?.body?.cancel();
      } catch {
        // a failing cache is no cache
      }
    }

    // The first piece is read (and verified) before the status line goes out: a version that
    // cannot be read gets an error status with no body. Later pieces are read `readAhead` at a
    // time while earlier ones are sent; one that fails aborts the stream: the client sees a body
    // shorter than Content-Length (an error), never wrong bytes.
    const pieces = new PieceReader(version, start, end, pieceBytes, readAhead, abort.signal);
    let first: Uint8Array;
    try {
      first = await pieces.next()!;
    } catch (e) {
      abort.abort();
      return failure(cors, e, request);
    }
    // A span of one piece is answered from memory (no stream); a longer one streams.
    const whole = first.length === end - start;
    const firstBody = (first.buffer instanceof ArrayBuffer ? first : first.slice()) as Uint8Array<ArrayBuffer>;
    const bodies = whole ? [] : pieceStreams(cache && spanKey ? 2 : 1, pieces, first, end - start, abort, (e) => options.onError?.(e, request));
    if (cache && spanKey) {
      const cacheHeaders = { 'Cache-Control': IMMUTABLE, 'Content-Type': 'application/octet-stream', 'Content-Length': String(end - start), 'X-Stratadisk-Span': `${start}-${end - 1}` };
      const put = cache
        .put(spanKey, new Response(bodies[1] ?? firstBody, { headers: cacheHeaders }))
        .catch((e: unknown) => options.onCacheError?.(e));
      if (ctx) ctx.waitUntil(put);
      else void put;
      return new Response(bodies[0] ?? firstBody, { status, headers: { ...headers, 'X-Stratadisk-Cache': 'miss' } });
    }
    return new Response(bodies[0] ?? firstBody, { status, headers });
  };
}

async function readExact(version: VersionSource, offset: number, length: number, signal: AbortSignal): Promise<Uint8Array> {
  const data = await version.read(offset, length, signal);
  if (data.length !== length) throw new Error(`the version gave ${data.length} bytes at ${offset} where ${length} were asked for`);
  return data;
}

/** Reads [start, end) in pieces of `pieceBytes`, up to `window` of them in flight, in order. */
class PieceReader {
  private pos: number;
  private readonly inflight: Promise<Uint8Array>[] = [];

  constructor(
    private readonly version: VersionSource,
    start: number,
    private readonly end: number,
    private readonly pieceBytes: number,
    private readonly window: number,
    private readonly signal: AbortSignal,
  ) {
    this.pos = start;
    this.fill();
  }

  private fill(): void {
    while (this.inflight.length < this.window && this.pos < this.end) {
      const n = Math.min(this.pieceBytes, this.end - this.pos);
      const p = readExact(this.version, this.pos, n, this.signal);
      p.catch(() => undefined); // observed by next(); this keeps an abandoned read from being an unhandled rejection
      this.inflight.push(p);
      this.pos += n;
    }
  }

  /** the next piece, or undefined after the last */
  next(): Promise<Uint8Array> | undefined {
    const p = this.inflight.shift();
    this.fill();
    return p;
  }
}

/**
 * The body (and, with a cache, a second copy of it for the cache): the first piece (already
 * read and verified), then the rest as they arrive, written by one pump into a FixedLengthStream
 * each in workerd (the runtime then sends Content-Length and treats a body cut short as an
 * error) or a plain identity stream elsewhere. A piece that fails aborts them all.
 */
function pieceStreams(copies: number, pieces: PieceReader, first: Uint8Array, length: number, abort: AbortController, onError: (e: unknown) => void): ReadableStream<Uint8Array>[] {
  const pipes: TransformStream<Uint8Array, Uint8Array>[] = Array.from({ length: copies }, () => (typeof FixedLengthStream === 'undefined' ? new TransformStream() : new FixedLengthStream(length)));
  const writers = pipes.map((p) => p.writable.getWriter());
  const writeAll = async (data: Uint8Array) => {
    await Promise.all(writers.map(async (w) => {
      await w.ready;
      await w.write(data);
    }));
  };
  const pump = async (): Promise<void> => {
    try {
      await writeAll(first);
      for (let p = pieces.next(); p !== undefined; p = pieces.next()) {
        let data: Uint8Array;
        try {
          data = await p;
        } catch (e) {
          onError(e); // the store's data failed: logged; the client gets a short body
          throw e;
        }
        await writeAll(data);
      }
      await Promise.all(writers.map((w) => w.close()));
    } catch (e) {
      // a piece failed, or the client (or the cache) went away: stop reading, end the bodies as errors
      abort.abort();
      await Promise.all(writers.map((w) => w.abort(e).catch(() => undefined)));
    }
  };
  void pump();
  return pipes.map((p) => p.readable);
}

declare const FixedLengthStream: (new (length: number) => TransformStream<Uint8Array, Uint8Array>) | undefined;

