/**
 * An ObjectStore on a store server's object area (`stratadisk serve-store DIR`; the protocol is
 * in store-server-objects.ts), over global `fetch`: Node, browsers and workers. The URL is the
 * server's, `http(s)://HOST:PORT/`; the token comes from the caller and travels only as
 * `Authorization: Bearer T` (it is registered as a secret: no message carries it).
 *
 * A hostile or broken server cannot make this client follow it elsewhere or allocate without a
 * bound: redirects are never followed (`untrusted`), every answer is read against a limit known
 * before it arrives (a range: its length; a whole object: `maxObjectBytes`; JSON: 4 MiB), and a
 * Content-Length or body over it is refused (`corrupt`) without being read. Failures to reach
 * the server and 5xx answers without our error body are retried (`retries`, default 3): every
 * operation is idempotent (a retried `ifAbsent` put whose first try landed answers false).
 */
import { StrataError, type ErrorCode } from '../errors.js';
import { tlsFailure, untrustedCertificate } from '../store/guarded-fetch.js';
import { redactUrl, registerSecret } from '../util/redact.js';
import { checkObjectKey } from './memory-objects.js';
import type { ObjectInfo, ObjectRange, ObjectStore } from './object-store.js';

export interface HttpObjectStoreOptions {
  /** the server's token (serve-store's token file) */
  token?: string;
  /** largest whole object `get` accepts (default 256 MiB) */
  maxObjectBytes?: number;
  /** keys per listing page and per delete request (default 1000, the server's maximum) */
  pageSize?: number;
  /** per-request timeout in ms (default 120 s) */
  timeoutMs?: number;
  /** retries of a request that failed to reach the server or got a 5xx (default 3) */
  retries?: number;
  /** first retry delay in ms, doubled each time (default 200) */
  retryDelayMs?: number;
  /** the fetch to use (default globalThis.fetch) */
  fetch?: typeof fetch;
}

/** Largest JSON answer (a listing page of 1000 keys of 1024 characters is about 1.1 MB). */
const MAX_JSON_BYTES = 4 << 20;
/** Largest error body read. */
const MAX_ERROR_BYTES = 16 << 10;

const CODES: readonly ErrorCode[] = ['out-of-range', 'invalid-argument', 'corrupt', 'quota', 'locked', 'read-only', 'timeout', 'unsupported', 'not-found', 'exists', 'io', 'unsafe-path', 'permission-denied'];

export class HttpObjectStore implements ObjectStore {
  readonly description: string;
  private readonly base: string;
  private readonly token: string | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly o: Required<Omit<HttpObjectStoreOptions, 'token' | 'fetch'>>;

  /** `url`: http(s)://HOST:PORT/ of `stratadisk serve-store`. */
  constructor(url: string, options: HttpObjectStoreOptions = {}) {
    if (options.token !== undefined) registerSecret(options.token);
    let u: URL;
    try {
      u = new URL(url);
    } catch (e) {
      throw new StrataError('invalid-argument', `"${redactUrl(url).slice(0, 200)}" is not a URL; give the store server's address, e.g. http://127.0.0.1:7000/.`, { cause: e });
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new StrataError('invalid-argument', `${redactUrl(url).slice(0, 200)} is not an http(s) URL of a store server.`);
    if (u.username !== '' || u.password !== '' || u.hash !== '' || u.search !== '') {
      throw new StrataError('invalid-argument', `${redactUrl(`${u.protocol}//${u.host}/`)}: give the store server's address alone (no credentials, query or #fragment in it); the token comes from --token-file or $STRATADISK_TOKEN.`);
    }
    if (u.pathname !== '/') throw new StrataError('invalid-argument', `${u.origin}${u.pathname.slice(0, 100)}: published images live in the server's object area; give the server's address alone, ${u.origin}/.`);
    this.base = `${u.origin}/.objects/`;
    this.description = `${u.origin}/`;
    this.token = options.token;
    this.fetchFn = options.fetch ?? ((i, init) => globalThis.fetch(i, init));
    this.o = {
      maxObjectBytes: options.maxObjectBytes ?? 256 << 20,
      pageSize: Math.max(1, Math.min(1000, options.pageSize ?? 1000)),
      timeoutMs: options.timeoutMs ?? 120_000,
      retries: options.retries ?? 3,
      retryDelayMs: options.retryDelayMs ?? 200,
    };
  }

  async get(key: string, range?: ObjectRange, signal?: AbortSignal): Promise<Uint8Array | null> {
    checkObjectKey(key);
    aborted(signal);
    if (range && range.length <= 0) return (await this.head(key, signal)) === null ? null : new Uint8Array(0);
    if (range && (!Number.isSafeInteger(range.offset) || range.offset < 0 || !Number.isSafeInteger(range.length))) throw new StrataError('invalid-argument', `A range of ${key} must have a whole offset ≥ 0 and length.`);
    const headers: Record<string, string> = range ? { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {};
    return this.request('GET', this.base + key, { headers, signal, what: `get ${key}` }, async (res) => {
      if (res.status === 404) return null;
      if (range && res.status === 416) return new Uint8Array(0);
      if (range && res.status === 206) {
        const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
        if (!cr || Number(cr[1]) !== range.offset) throw this.corrupt(`answered a range of ${key} with another range`);
        return readBounded(res, range.length, () => this.corrupt(`sent more than the ${range.length} bytes asked for of ${key}`));
      }
      if (res.status === 200) {
        // a whole object where a range was asked (a server that ignores Range): not ours
        if (range) throw this.corrupt(`answered a range request of ${key} with the whole object`);
        return readBounded(res, this.o.maxObjectBytes, () => new StrataError('out-of-range', `${this.description} sent more than ${this.o.maxObjectBytes} bytes for ${key}; refused (raise maxObjectBytes if it is that large).`));
      }
      return undefined;
    });
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    checkObjectKey(key);
    aborted(signal);
    return this.request('HEAD', this.base + key, { signal, what: `head ${key}` }, async (res) => {
      if (res.status === 404) return null;
      if (res.status !== 200) return undefined;
      const size = Number(res.headers.get('content-length'));
      if (!/^[0-9]{1,16}$/.test(res.headers.get('content-length') ?? '') || !Number.isSafeInteger(size)) throw this.corrupt(`gave no size for ${key}`);
      const lm = Date.parse(res.headers.get('last-modified') ?? '');
      return { key, size, ...(Number.isFinite(lm) ? { modified: lm } : {}) };
    });
  }

  async put(key: string, data: Uint8Array, options?: { ifAbsent?: boolean; signal?: AbortSignal }): Promise<boolean> {
    checkObjectKey(key);
    aborted(options?.signal);
    const body = data.slice(); // the caller may change its buffer while we retry
    return this.request('PUT', this.base + key, { headers: { 'content-type': 'application/octet-stream', ...(options?.ifAbsent ? { 'if-none-match': '*' } : {}) }, body, signal: options?.signal, what: `put ${key}` }, async (res) => {
      if (res.status === 201 || res.status === 200) {
        await res.body?.cancel().catch(() => {});
        return true;
      }
      if (res.status === 412 && options?.ifAbsent) {
        await res.body?.cancel().catch(() => {});
        return false;
      }
      return undefined;
    });
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    aborted(signal);
    if (prefix.length > 1024 || !/^[A-Za-z0-9._@/-]*$/.test(prefix)) throw new StrataError('invalid-argument', `A listing prefix ${JSON.stringify(prefix.slice(0, 80))} cannot start any object key.`);
    let after = '';
    for (let page = 0; ; page++) {
      const q = new URLSearchParams({ list: '1', prefix, limit: String(this.o.pageSize) });
      if (after !== '') q.set('after', after);
      const answer = await this.request('GET', `${this.base}?${q}`, { signal, what: `list ${prefix}` }, async (res) => (res.status === 200 ? readJson(res, (w) => this.corrupt(w)) : undefined));
      const { objects, next } = (answer ?? {}) as { objects?: unknown; next?: unknown };
      if (!Array.isArray(objects) || objects.length > this.o.pageSize || (next !== null && typeof next !== 'string')) throw this.corrupt(`sent a malformed listing of ${prefix}`);
      for (const o of objects as { key?: unknown; size?: unknown; modified?: unknown }[]) {
        // every key must be one we asked for, in order, after the previous one: a page that goes back would loop
        if (typeof o?.key !== 'string' || !o.key.startsWith(prefix) || o.key <= after || !Number.isSafeInteger(o.size) || (o.size as number) < 0) throw this.corrupt(`sent a malformed listing of ${prefix}`);
        checkObjectKey(o.key);
        after = o.key;
        yield { key: o.key, size: o.size as number, ...(typeof o.modified === 'number' && Number.isFinite(o.modified) ? { modified: o.modified } : {}) };
      }
      if (next === null) return;
      if (objects.length === 0 || next !== after) throw this.corrupt(`sent a malformed listing of ${prefix}`);
      aborted(signal);
    }
  }

  async delete(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    for (const k of keys) checkObjectKey(k);
    aborted(signal);
    for (let i = 0; i < keys.length; i += this.o.pageSize) {
      const body = new TextEncoder().encode(JSON.stringify({ keys: keys.slice(i, i + this.o.pageSize) }));
      await this.request('POST', `${this.base}?delete`, { headers: { 'content-type': 'application/json' }, body, signal, what: 'delete' }, async (res) => {
        if (res.status !== 200) return undefined;
        await res.body?.cancel().catch(() => {});
        return true;
      });
    }
  }

  private corrupt(what: string): StrataError {
    return new StrataError('corrupt', `The store server at ${this.description} ${what}; refused.`);
  }

  /**
   * Send one request (retrying transport failures and bare 5xx); `accept` turns an answer into
   * the result, or `undefined` when the answer is an error to report.
   */
  private async request<T>(method: string, url: string, r: { headers?: Record<string, string>; body?: Uint8Array; signal?: AbortSignal | undefined; what: string }, accept: (res: Response) => Promise<T | undefined>): Promise<T> {
    const headers: Record<string, string> = { ...r.headers };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    for (let attempt = 0; ; attempt++) {
      aborted(r.signal);
      if (attempt > 0) await sleep(Math.min(5_000, this.o.retryDelayMs * 2 ** (attempt - 1)), r.signal);
      const timeout = AbortSignal.timeout(this.o.timeoutMs);
      const signal = r.signal ? AbortSignal.any([r.signal, timeout]) : timeout;
      let res: Response;
      try {
        res = await this.fetchFn(url, { method, headers, body: (r.body ?? null) as BodyInit | null, signal, redirect: 'manual', cache: 'no-store' });
      } catch (e) {
        if (r.signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled', { cause: e });
        const tls = tlsFailure(e);
        if (tls !== null) throw untrustedCertificate(`the store server at ${this.description}`, tls);
        if (attempt < this.o.retries) continue;
        if (timeout.aborted) throw new StrataError('timeout', `The store server at ${this.description} did not answer (${r.what}) within ${this.o.timeoutMs} ms; check the server and the network.`, { cause: e });
        throw new StrataError('io', `Cannot reach the store server at ${this.description} (${r.what}: ${(e as Error)?.message ?? String(e)}); check that \`stratadisk serve-store\` runs there and the URL is right.`, { cause: e });
      }
      try {
        if (res.type === 'opaqueredirect' || (res.status >= 300 && res.status < 400)) {
          throw new StrataError('untrusted', `The store server at ${this.description} answered ${r.what} with a redirect; redirects are not followed for published images. Give the server's own address.`);
        }
        const ok = await accept(res);
        if (ok !== undefined) return ok;
        const err = await readError(res);
        if (res.status >= 500 && err.code === undefined && attempt < this.o.retries) continue;
        if (res.status === 401) throw new StrataError('permission-denied', `The store server at ${this.description} refused the token; pass serve-store's token (--token-file FILE, or $STRATADISK_TOKEN).`);
        const code = CODES.includes(err.code as ErrorCode) ? (err.code as ErrorCode) : res.status === 403 ? 'permission-denied' : 'io';
        const message = typeof err.message === 'string' ? err.message.slice(0, 500) : `HTTP ${res.status}`;
        throw new StrataError(code, `Store server ${this.description} (${r.what}): ${message}`);
      } catch (e) {
        await res.body?.cancel().catch(() => {});
        if (e instanceof StrataError) throw e;
        // the answer broke off while it was read
        if (r.signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled', { cause: e });
        if (attempt < this.o.retries) continue;
        if (timeout.aborted) throw new StrataError('timeout', `The store server at ${this.description} did not finish its answer (${r.what}) within ${this.o.timeoutMs} ms.`, { cause: e });
        throw new StrataError('io', `The answer of the store server at ${this.description} broke off (${r.what}: ${(e as Error)?.message ?? String(e)}).`, { cause: e });
      }
    }
  }
}

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', stop);
      resolve();
    }
    function stop() {
      clearTimeout(t);
      reject(new StrataError('aborted', 'the object store operation was cancelled'));
    }
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/**
 * The body of `res`, at most `limit` bytes: a Content-Length over it is refused before anything
 * is read; a body that grows past it (or past its Content-Length) is cut off and refused.
 */
export async function readBounded(res: Response, limit: number, tooBig: () => StrataError): Promise<Uint8Array> {
  const declaredText = res.headers.get('content-length');
  const declared = declaredText !== null && /^[0-9]{1,16}$/.test(declaredText) ? Number(declaredText) : -1;
  if (declared > limit) {
    await res.body?.cancel().catch(() => {});
    throw tooBig();
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  let out = new Uint8Array(declared >= 0 ? declared : Math.min(limit, 64 << 10));
  let n = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (n + value.length > limit || (declared >= 0 && n + value.length > declared)) throw tooBig();
      if (n + value.length > out.length) {
        const grown = new Uint8Array(Math.min(limit, Math.max(out.length * 2, n + value.length)));
        grown.set(out.subarray(0, n));
        out = grown;
      }
      out.set(value, n);
      n += value.length;
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  }
  if (declared >= 0 && n !== declared) throw new StrataError('io', `The answer was cut short (${n} of ${declared} bytes); try again.`);
  return n === out.length ? out : out.subarray(0, n);
}

async function readJson(res: Response, corrupt: (what: string) => StrataError): Promise<unknown> {
  const body = await readBounded(res, MAX_JSON_BYTES, () => corrupt(`sent an answer over ${MAX_JSON_BYTES} bytes`));
  try {
    return JSON.parse(new TextDecoder().decode(body)) as unknown;
  } catch {
    throw corrupt('sent an answer that is not JSON');
  }
}

async function readError(res: Response): Promise<{ code?: unknown; message?: unknown }> {
  try {
    const body = await readBounded(res, MAX_ERROR_BYTES, () => new StrataError('io', 'error body too large'));
    const v = JSON.parse(new TextDecoder().decode(body)) as unknown;
    return v !== null && typeof v === 'object' ? (v as { code?: unknown; message?: unknown }) : {};
  } catch {
    await res.body?.cancel().catch(() => {});
    return {};
  }
}
