import { StrataError } from '../errors.js';
import { abortableSleep } from '../util/sleep.js';
import { redactUrl } from '../util/redact.js';
import { fetchSameOrigin, tlsFailure, untrustedCertificate } from './guarded-fetch.js';
import { BaseStore } from './store.js';

/**
 * The version of a remote image a volume is built on: its URL, its size and the validators the
 * server gave for it. Every later answer must carry the same validators and total size, or the
 * read fails with `image-changed` (never with bytes of another version).
 */
export interface ImagePin {
  url: string;
  size: number;
  /** the ETag as the server sent it (strong `"x"` or weak `W/"x"`) */
  etag?: string;
  /** the Last-Modified header as the server sent it (used when there is no ETag) */
  lastModified?: string;
}

export interface HttpStoreOptions {
  /** The `fetch` to use (default: the global one: Node 20, browsers, workers, edge runtimes). */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. authorization). */
  headers?: Record<string, string>;
  /** Time allowed for one request, from sending it to the last byte of its body (default 30 s). */
  timeoutMs?: number;
  /** Further attempts after a failed one: network errors, timeouts, 408/429/5xx, cut bodies (default 5). */
  retries?: number;
  /** First back-off delay; it doubles per attempt, with jitter, up to 5 s (default 100 ms). */
  backoffMs?: number;
  /** Largest range asked for in one request; longer reads are split (default 8 MiB). Bounds every response. */
  maxRequestBytes?: number;
  /** Reads waiting at the same time whose ranges are at most this far apart go out as one request (default 0: touching or overlapping only). */
  coalesceGap?: number;
  /** Sequential reads fetch this many bytes more and serve the next reads from them (default 0: off). */
  readAhead?: number;
  /** Aborting cancels every request in flight and every later one. */
  signal?: AbortSignal;
  /** Called for each HTTP request sent (for statistics and tests). */
  onRequest?: (offset: number, length: number) => void;
}

/** Counters since the store was opened. */
export interface HttpStats {
  requests: number;
  /** body bytes received */
  bytes: number;
  retries: number;
  /** reads answered from the read-ahead window without a request */
  readAheadHits: number;
}

const DEFAULTS = { timeoutMs: 30_000, retries: 5, backoffMs: 100, maxRequestBytes: 8 << 20, coalesceGap: 0, readAhead: 0 };
const MAX_BACKOFF_MS = 5_000;
/** A validator longer than this is not a real one; never store unbounded text from a server. */
const MAX_VALIDATOR = 1024;
/** Ranges address the stored bytes: ask for no transfer coding (browsers drop this forbidden header and do not compress ranges anyway). */
const IDENTITY = { 'Accept-Encoding': 'identity' };
/**
 * Requests bypass the browser's HTTP cache: fetched blocks are kept in the volume's cache layer
 * anyway, and a cached answer would hide a changed image until it expires.
 */
const NO_STORE = { cache: 'no-store' } as const;
const CONTENT_RANGE = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16}|\*)$/;

interface Pending {
  offset: number;
  end: number;
  target: Uint8Array;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** A failure worth another attempt (network, timeout, 5xx, a body cut short). */
class Retryable extends Error {
  constructor(message: string, readonly timeout = false) {
    super(message);
  }
}

/**
 * A read-only Store over an HTTP(S) URL, read with range requests. It pins the image by ETag
 * (or Last-Modified) and size, and checks every answer: status 206, a `Content-Range` that is
 * exactly the range asked for, the pinned total size and validators, and a body of exactly that
 * length (never more is read into memory). Failures that may pass are retried with exponential
 * back-off, resuming a cut body where it stopped. Reads waiting at the same time that touch are
 * sent as one request; sequential reads can read ahead.
 */
export class HttpStore extends BaseStore {
  readonly resizable = false;
  readonly pin: ImagePin;
  /** the URL as messages show it (credentials in it redacted) */
  private readonly shown: string;
  readonly stats: HttpStats = { requests: 0, bytes: 0, retries: 0, readAheadHits: 0 };
  private readonly opts: typeof DEFAULTS & HttpStoreOptions;
  private readonly fetchFn: typeof fetch;
  private queue: Pending[] = [];
  private scheduled = false;
  private lastEnd = -1;
  private ahead: { offset: number; bytes: Uint8Array } | null = null;
  private readonly aborter = new AbortController();

  private constructor(pin: ImagePin, options: HttpStoreOptions) {
    super(`http:${redactUrl(pin.url)}`, true);
    this.pin = { ...pin };
    this.shown = redactUrl(pin.url);
    this.opts = { ...DEFAULTS, ...stripUndefined(options) };
    if (!(this.opts.maxRequestBytes >= 1)) throw new StrataError('invalid-argument', 'maxRequestBytes must be at least 1.');
    this.fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    options.signal?.addEventListener('abort', () => this.aborter.abort(options.signal!.reason), { once: true });
  }

  get size(): number {
    return this.pin.size;
  }

  /**
   * Open `url`: one request (`Range: bytes=0-0`) learns the size and the validators. With
   * `expect`, the answer must match it (else `image-changed`).
   */
  static async open(url: string, options: HttpStoreOptions & { expect?: Omit<ImagePin, 'url'> } = {}): Promise<HttpStore> {
    checkUrl(url);
    const probe = new HttpStore({ url, size: 0 }, options);
    const pin = await probe.probe();
    const store = new HttpStore(pin, options);
    if (options.expect) store.checkPin(options.expect, 'The image');
    return store;
  }

  /** A store for an image pinned earlier (from a manifest). Sends nothing until the first read. */
  static fromPin(pin: ImagePin, options: HttpStoreOptions = {}): HttpStore {
    checkUrl(pin.url);
    return new HttpStore(pin, options);
  }

  private checkPin(expect: Omit<ImagePin, 'url'>, what: string): void {
    const changed =
      expect.size !== this.pin.size ||
      (expect.etag !== undefined && expect.etag !== this.pin.etag) ||
      (expect.etag === undefined && expect.lastModified !== undefined && expect.lastModified !== this.pin.lastModified);
    if (changed) throw imageChanged(this.shown, `${what} now has size ${this.pin.size}, ETag ${this.pin.etag ?? '-'}, Last-Modified ${this.pin.lastModified ?? '-'}`);
  }

  protected _readInto(offset: number, target: Uint8Array): Promise<void> {
    const end = offset + target.length;
    const a = this.ahead;
    if (a && offset >= a.offset && end <= a.offset + a.bytes.length) {
      target.set(a.bytes.subarray(offset - a.offset, end - a.offset));
      this.stats.readAheadHits++;
      this.lastEnd = end;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ offset, end, target, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // Reads issued in the same tick (a chain's runs, a guest's queue) are grouped first.
        queueMicrotask(() => this.dispatch());
      }
    });
  }

  /** Group waiting reads into requests: sorted, merged when they touch (or lie within `coalesceGap`), split at `maxRequestBytes`. */
  private dispatch(): void {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    q.sort((x, y) => x.offset - y.offset);
    const max = this.opts.maxRequestBytes;
    for (let i = 0; i < q.length; ) {
      const start = q[i]!.offset;
      let end = q[i]!.end;
      let j = i + 1;
      while (j < q.length && q[j]!.offset <= end + this.opts.coalesceGap && Math.max(end, q[j]!.end) - start <= max) {
        end = Math.max(end, q[j]!.end);
        j++;
      }
      void this.serve(q.slice(i, j), start, end);
      i = j;
    }
  }

  private async serve(group: Pending[], start: number, end: number): Promise<void> {
    try {
      // Read ahead when this group continues where the last one ended.
      let fetchEnd = end;
      if (this.opts.readAhead > 0 && start === this.lastEnd) {
        fetchEnd = Math.min(this.size, end + this.opts.readAhead, start + Math.max(this.opts.maxRequestBytes, end - start));
      }
      this.lastEnd = end;
      const single = group.length === 1 && fetchEnd === end && group[0]!.offset === start;
      const buf = single ? group[0]!.target : new Uint8Array(fetchEnd - start);
      for (let at = start; at < fetchEnd; at += this.opts.maxRequestBytes) {
        const n = Math.min(this.opts.maxRequestBytes, fetchEnd - at);
        await this.fetchRange(at, buf.subarray(at - start, at - start + n));
      }
      if (!single) {
        for (const p of group) p.target.set(buf.subarray(p.offset - start, p.end - start));
        if (fetchEnd > end) this.ahead = { offset: end, bytes: buf.subarray(end - start) };
      }
      for (const p of group) p.resolve();
    } catch (e) {
      for (const p of group) p.reject(e);
    }
  }

  /** Fill `into` with bytes [offset, offset + into.length), retrying and resuming as needed. */
  private async fetchRange(offset: number, into: Uint8Array): Promise<void> {
    let got = 0;
    let attempt = 0;
    for (;;) {
      this.assertOpen();
      if (this.aborter.signal.aborted) throw new StrataError('aborted', `Reading ${this.shown} was cancelled.`);
      try {
        const n = await this.request(offset + got, into.subarray(got));
        got += n;
        if (got === into.length) return;
        // Progress was made: the next cut starts a fresh count of attempts.
        if (n > 0) attempt = 0;
        throw new Retryable(`the body ended after ${got} of ${into.length} bytes`);
      } catch (e) {
        if (!(e instanceof Retryable)) throw e;
        if (attempt >= this.opts.retries) {
          const code = e.timeout ? 'timeout' : 'io';
          throw new StrataError(code, `Reading ${into.length} bytes at ${offset} of ${this.shown} failed after ${attempt + 1} attempts (${e.message}). Check the network and the server, then try again.`);
        }
        const delay = Math.min(MAX_BACKOFF_MS, this.opts.backoffMs * 2 ** attempt) * (0.5 + Math.random() * 0.5);
        attempt++;
        this.stats.retries++;
        await sleep(delay, this.aborter.signal);
      }
    }
  }

  /**
   * One request for [offset, offset + into.length). Returns the bytes received (fewer when the
   * connection is cut: the caller resumes). Throws Retryable or a StrataError.
   */
  private async request(offset: number, into: Uint8Array): Promise<number> {
    const last = offset + into.length - 1;
    const signal = AbortSignal.any([this.aborter.signal, AbortSignal.timeout(this.opts.timeoutMs)]);
    this.stats.requests++;
    this.opts.onRequest?.(offset, into.length);
    let res: Response;
    try {
      res = await fetchSameOrigin(this.fetchFn, this.pin.url, { headers: { ...this.opts.headers, ...IDENTITY, Range: `bytes=${offset}-${last}` }, signal, ...NO_STORE }, `The server of ${this.shown}`);
    } catch (e) {
      throw this.networkError(e, signal);
    }
    let received = 0;
    try {
      this.checkHead(res, offset, last);
      const reader = res.body?.getReader();
      if (!reader) throw badAnswer(this.shown, 'a 206 answer without a body');
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          // The bound: never more than asked for, whatever the server sends.
          if (received + value.length > into.length) throw badAnswer(this.shown, `more body than the ${into.length} bytes of Content-Range`);
          into.set(value, received);
          received += value.length;
          this.stats.bytes += value.length;
        }
      } finally {
        reader.cancel().catch(() => {});
      }
    } catch (e) {
      if (e instanceof StrataError || e instanceof Retryable) {
        await res.body?.cancel().catch(() => {});
        throw e;
      }
      // The connection broke mid-body: keep what arrived, resume after a back-off.
      if (received > 0 && !this.aborter.signal.aborted) return received;
      throw this.networkError(e, signal);
    }
    return received;
  }

  private networkError(e: unknown, signal: AbortSignal): Error {
    if (this.aborter.signal.aborted) return new StrataError('aborted', `Reading ${this.shown} was cancelled.`);
    if (e instanceof StrataError) return e; // a refused redirect
    const tls = tlsFailure(e);
    if (tls !== null) return untrustedCertificate(`the server of ${this.shown}`, tls);
    if (signal.aborted) return new Retryable(`no complete answer within ${this.opts.timeoutMs} ms`, true);
    return new Retryable(e instanceof Error ? e.message : String(e));
  }

  /** Status, Content-Range, validators and Content-Length of one answer. */
  private checkHead(res: Response, first: number, last: number): void {
    const url = this.shown;
    const s = res.status;
    if (s === 408 || s === 429 || s >= 500) throw new Retryable(`HTTP ${s}`);
    // Validators first: a server answering 200 or 416 may simply hold another version.
    this.checkValidators(res);
    if (s === 412) throw imageChanged(url, 'the server reports that its precondition failed');
    if (s === 416) throw imageChanged(url, `the server cannot serve bytes ${first}-${last} any more (HTTP 416)`);
    if (s === 404 || s === 410) throw new StrataError('not-found', `${url} is gone (HTTP ${s}). Point the volume at the image's new address with refresh, or reset it.`);
    if (s !== 206) throw badAnswer(url, s === 200 ? 'the whole image (HTTP 200) instead of the range asked for: the server ignores Range requests' : `HTTP ${s}`);
    const cr = parseContentRange(res.headers.get('content-range'));
    if (!cr) throw badAnswer(url, `a 206 answer without a valid Content-Range (${clip(res.headers.get('content-range'))})`);
    if (cr.total !== null && cr.total !== this.pin.size) throw imageChanged(url, `its size is now ${cr.total} bytes, not ${this.pin.size}`);
    if (cr.first !== first || cr.last !== last) throw badAnswer(url, `bytes ${cr.first}-${cr.last} when ${first}-${last} were asked for`);
    const len = res.headers.get('content-length');
    if (len !== null && len !== String(last - first + 1)) throw badAnswer(url, `Content-Length ${clip(len)} for a range of ${last - first + 1} bytes`);
  }

  private checkValidators(res: Response): void {
    const etag = res.headers.get('etag');
    const lm = res.headers.get('last-modified');
    if (this.pin.etag !== undefined) {
      if (etag !== null && etag !== this.pin.etag) throw imageChanged(this.shown, `its ETag is now ${clip(etag)}, not ${this.pin.etag}`);
      if (etag === null && res.status === 206) throw imageChanged(this.shown, 'the server no longer sends the ETag the image was pinned by');
    } else if (this.pin.lastModified !== undefined) {
      if (lm !== null && lm !== this.pin.lastModified) throw imageChanged(this.shown, `it was modified at ${clip(lm)}, not ${this.pin.lastModified}`);
      if (lm === null && res.status === 206) throw imageChanged(this.shown, 'the server no longer sends the Last-Modified the image was pinned by');
    }
  }

  /** The first request: learn size and validators from `Range: bytes=0-0`. */
  private async probe(): Promise<ImagePin> {
    const url = this.pin.url;
    const shown = this.shown;
    for (let attempt = 0; ; attempt++) {
      const signal = AbortSignal.any([this.aborter.signal, AbortSignal.timeout(this.opts.timeoutMs)]);
      this.stats.requests++;
      try {
        let res: Response;
        try {
          res = await fetchSameOrigin(this.fetchFn, url, { headers: { ...this.opts.headers, ...IDENTITY, Range: 'bytes=0-0' }, signal, ...NO_STORE }, `The server of ${shown}`);
        } catch (e) {
          throw this.networkError(e, signal);
        }
        await res.body?.cancel().catch(() => {});
        const s = res.status;
        if (s === 408 || s === 429 || s >= 500) throw new Retryable(`HTTP ${s}`);
        if (s === 404 || s === 410) throw new StrataError('not-found', `No image at ${shown} (HTTP ${s}). Check the URL.`);
        let size: number;
        if (s === 416) {
          // An empty image cannot serve byte 0; its size is in `bytes */0`.
          const cr = parseContentRange(res.headers.get('content-range'));
          if (!cr || cr.total !== 0) throw badAnswer(shown, 'HTTP 416 to a request for its first byte');
          size = 0;
        } else if (s === 206) {
          const cr = parseContentRange(res.headers.get('content-range'));
          if (!cr || cr.first !== 0 || cr.last !== 0 || cr.total === null) throw badAnswer(shown, `a Content-Range of ${clip(res.headers.get('content-range'))} for the first byte (in a browser, the server must also list Content-Range in Access-Control-Expose-Headers)`);
          size = cr.total;
        } else if (s === 200) {
          throw new StrataError('unsupported', `${shown} does not support range requests (it answered HTTP 200 to a Range request); serve the image from a server that does.`);
        } else {
          throw badAnswer(shown, `HTTP ${s} to a request for its first byte`);
        }
        const pin: ImagePin = { url, size };
        const etag = res.headers.get('etag');
        const lm = res.headers.get('last-modified');
        if (etag !== null && etag.length <= MAX_VALIDATOR) pin.etag = etag;
        if (lm !== null && lm.length <= MAX_VALIDATOR) pin.lastModified = lm;
        return pin;
      } catch (e) {
        if (!(e instanceof Retryable)) throw e;
        if (attempt >= this.opts.retries) {
          throw new StrataError(e.timeout ? 'timeout' : 'io', `Cannot reach ${shown} (${e.message}, ${attempt + 1} attempts). Check the URL and the network.`);
        }
        this.stats.retries++;
        await sleep(Math.min(MAX_BACKOFF_MS, this.opts.backoffMs * 2 ** attempt), this.aborter.signal);
      }
    }
  }

  protected async _write(): Promise<void> {
    throw new StrataError('read-only', `${this.label} is read-only.`);
  }
  protected async _flush(): Promise<void> {}
  protected async _truncate(): Promise<void> {
    throw new StrataError('read-only', `${this.label} is read-only.`);
  }
  protected async _close(): Promise<void> {
    this.aborter.abort();
    this.ahead = null;
  }
}

/** `bytes A-B/T` (T may be `*`) or `bytes *\/T`; null when malformed or inconsistent. */
export function parseContentRange(h: string | null): { first: number; last: number; total: number | null } | null {
  if (h === null) return null;
  const unsat = /^bytes \*\/(\d{1,16})$/.exec(h.trim());
  if (unsat) return { first: -1, last: -1, total: Number(unsat[1]) };
  const m = CONTENT_RANGE.exec(h.trim());
  if (!m) return null;
  const first = Number(m[1]);
  const last = Number(m[2]);
  const total = m[3] === '*' ? null : Number(m[3]);
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || last < first) return null;
  if (total !== null && (!Number.isSafeInteger(total) || last >= total)) return null;
  return { first, last, total };
}

function checkUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StrataError('invalid-argument', `"${clip(redactUrl(url))}" is not a URL; give an http:// or https:// address of a raw disk image.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new StrataError('invalid-argument', `${clip(redactUrl(url))} is not an http(s) URL; give an http:// or https:// address.`);
  if (u.username !== '' || u.password !== '') {
    throw new StrataError('invalid-argument', `${clip(redactUrl(url))} carries a user name or password; they are not sent (fetch refuses them) and would be kept in the volume's records. Serve the image without credentials, or behind a presigned URL.`);
  }
}

function imageChanged(url: string, detail: string): StrataError {
  return new StrataError('image-changed', `The image at ${url} changed since the volume was pinned to it: ${detail}. Choose the new version explicitly (refresh), or restore the old one on the server.`);
}

function badAnswer(url: string, detail: string): StrataError {
  return new StrataError('corrupt', `The server of ${url} sent ${detail}; no data from that answer was used. Check the server or the proxy in between.`);
}

function clip(s: string | null): string {
  if (s === null) return 'none';
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return abortableSleep(ms, signal, 'The read was cancelled.');
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
