import { isStrataError } from '../errors.js';
import { entityTag, evaluatePreconditions, rangeApplies } from './conditional.js';
import { contentRange, decideRange, unsatisfiedRange } from './range.js';
import { isContentIdRef, parseRoute } from './route.js';
import type { CacheLike, OpenVersion, VersionRef, VersionSource, WaitUntil } from './source.js';

/**
 * The fetch handler that serves published versions (Cloudflare Workers / workerd, and Node
 * through `stratadisk serve-edge`): GET and HEAD of `/IMAGE/TAG` and `/IMAGE/@CONTENTID` with
 * single byte ranges, validators and CORS. See docs in src/edge/README.md.
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
   * Bytes read from the version per step while a body streams (default 2 MiB): a 1 GiB range
   * is served in pieces of this size, one read ahead, never buffered whole.
   */
  pieceBytes?: number;
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
  const pieceBytes = Math.max(4096, Math.floor(options.pieceBytes ?? 2 * 1024 * 1024));
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
    // cannot be read gets an error status with no body. A later piece that fails aborts the
    // stream: the client sees a body shorter than Content-Length (an error), never wrong bytes.
    let first: Uint8Array;
    try {
      first = await readExact(version, start, Math.min(pieceBytes, end - start), abort.signal);
    } catch (e) {
      return failure(cors, e, request);
    }
    const body = pieceStream(version, start, end, first, pieceBytes, abort, (e) => options.onError?.(e, request));
    if (cache && spanKey) {
      const [toClient, toCache] = body.tee();
      const put = cache
        .put(spanKey, new Response(fixedLength(toCache, end - start), { headers: { 'Cache-Control': IMMUTABLE, 'Content-Type': 'application/octet-stream', 'Content-Length': String(end - start), 'X-Stratadisk-Span': `${start}-${end - 1}` } }))
        .catch((e: unknown) => options.onCacheError?.(e));
      if (ctx) ctx.waitUntil(put);
      else void put;
      return new Response(fixedLength(toClient, end - start), { status, headers: { ...headers, 'X-Stratadisk-Cache': 'miss' } });
    }
    return new Response(fixedLength(body, end - start), { status, headers });
  };
}

async function readExact(version: VersionSource, offset: number, length: number, signal: AbortSignal): Promise<Uint8Array> {
  const data = await version.read(offset, length, signal);
  if (data.length !== length) throw new Error(`the version gave ${data.length} bytes at ${offset} where ${length} were asked for`);
  return data;
}

/** Bytes [start, end) in pieces, the first already read, the next one read ahead while one is sent. */
function pieceStream(version: VersionSource, start: number, end: number, first: Uint8Array, pieceBytes: number, abort: AbortController, onError: (e: unknown) => void): ReadableStream<Uint8Array> {
  let pos = start + first.length;
  let firstPending: Uint8Array | undefined = first;
  const next = (): Promise<Uint8Array> | undefined => {
    if (pos >= end) return undefined;
    const p = readExact(version, pos, Math.min(pieceBytes, end - pos), abort.signal);
    p.catch(() => undefined); // observed in pull(); this keeps a cancelled stream's read from being an unhandled rejection
    pos += Math.min(pieceBytes, end - pos);
    return p;
  };
  let pending = next();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (firstPending !== undefined) {
          controller.enqueue(firstPending);
          firstPending = undefined;
          if (pending === undefined) controller.close();
          return;
        }
        if (pending === undefined) {
          controller.close();
          return;
        }
        let data: Uint8Array;
        try {
          data = await pending;
        } catch (e) {
          onError(e);
          abort.abort();
          controller.error(e);
          return;
        }
        pending = next();
        controller.enqueue(data);
        if (pending === undefined) controller.close();
      },
      cancel() {
        abort.abort();
      },
    },
    { highWaterMark: 0 },
  );
}

declare const FixedLengthStream: (new (length: number) => TransformStream<Uint8Array, Uint8Array>) | undefined;

/**
 * In workerd, a body of known length goes through FixedLengthStream, so the response carries
 * Content-Length (not chunked) and a body cut short is an error the client sees. Elsewhere (Node)
 * the stream is returned as it is and the server writes Content-Length itself.
 */
function fixedLength(body: ReadableStream<Uint8Array>, length: number): ReadableStream<Uint8Array> {
  if (typeof FixedLengthStream === 'undefined') return body;
  return body.pipeThrough(new FixedLengthStream(length));
}
