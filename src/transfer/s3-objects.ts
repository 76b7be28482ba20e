/**
 * An ObjectStore over any S3-compatible endpoint (AWS S3, Cloudflare R2's S3 API, MinIO, Ceph
 * RGW, ...), with global `fetch` and SigV4 signing by `aws4fetch`: runs in Node, browsers and
 * Workers. Configuration is explicit here; reading it from the environment and from a
 * credentials file is Node-only and lives in s3-env.ts.
 *
 * What the server sends is untrusted: bodies are read in chunks and never beyond what was asked
 * (a range's length, `maxObjectBytes` for a whole object, 16 MiB for a listing page), so a
 * declared Content-Length never sizes an allocation; a 206 must cover exactly the range asked;
 * a server that ignores `Range` and sends the whole object is read up to the range and cut off.
 * Listed keys must be in order and pass the object-key rules, else they are skipped (foreign
 * keys) or the listing fails (`corrupt`, out of order). Redirects are never followed (a
 * redirect is an error naming the region or the endpoint to use). Plain http is allowed only
 * to a loopback endpoint. Requests are retried (bounded, with backoff) on network errors, 5xx
 * and 429, and every one honours an AbortSignal and a timeout. The secret key never appears in
 * messages: it is registered for redaction, and messages are redacted before they are thrown.
 *
 * `put(..., { ifAbsent })` first asks HEAD (an existing object is not uploaded again), then
 * PUTs with `If-None-Match: *`, which AWS S3, R2, MinIO and Ceph honour atomically (412 ->
 * false). A server that refuses the header (501/NotImplemented) gets a plain PUT after the
 * HEAD: not atomic against a concurrent writer, said once through `onWarning`; a server that
 * silently ignores it (s3rver) is equally not atomic. For content-addressed objects (packs,
 * segments, versions) a lost race writes the same bytes, so this is harmless there.
 */
import { AwsClient } from 'aws4fetch';
import { StrataError, type ErrorCode } from '../errors.js';
import { abortableSleep } from '../util/sleep.js';
import { isLoopback } from '../util/loopback.js';
import { redactSecrets, registerSecret } from '../util/redact.js';
import { tlsFailure, untrustedCertificate } from '../store/guarded-fetch.js';
import { checkObjectKey } from './memory-objects.js';
import { OBJECT_KEY, type ObjectInfo, type ObjectRange, type ObjectStore } from './object-store.js';
import { deleteBody, parseDeleteErrors, parseError, parseListPage } from './s3-xml.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3ObjectStoreOptions {
  bucket: string;
  /** key prefix inside the bucket, without leading or trailing '/' ('' = the whole bucket) */
  prefix?: string;
  /** e.g. https://ACCOUNT.r2.cloudflarestorage.com or http://127.0.0.1:9000 (default: AWS in `region`) */
  endpoint?: string;
  /** default us-east-1 (R2: auto) */
  region?: string;
  /** bucket in the path (endpoint/bucket/key) rather than in the host name; default: true when `endpoint` is given */
  pathStyle?: boolean;
  /** none: unsigned requests (a public bucket) */
  credentials?: S3Credentials;
  fetch?: typeof fetch;
  /** retries of a request after a network error, 5xx or 429 (default 4) */
  retries?: number;
  /** first backoff delay in ms, doubled per retry up to 5 s (default 200) */
  retryDelayMs?: number;
  /** one request, body included (default 120 s) */
  timeoutMs?: number;
  /** largest object read whole by `get` without a range (default 256 MiB) */
  maxObjectBytes?: number;
  /** told once when the server refuses conditional PUT and ifAbsent is no longer atomic */
  onWarning?: (message: string) => void;
  /** keys per listing page, 1–1000 (default 1000) */
  listPageSize?: number;
}

/** A bucket name as S3, R2 and MinIO accept them (3–63 of a-z 0-9 . - _). */
export const BUCKET_NAME = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;
/** Largest listing page read (1000 keys of 1 KiB each and their XML fit easily). */
const MAX_LIST_PAGE_BYTES = 16 << 20;
/** Largest error answer read. */
const MAX_ERROR_BYTES = 64 << 10;
const DELETE_BATCH = 1000;
/** Keep signed answers out of HTTP caches; Workers' fetch does not take the `cache` option (older compatibility dates throw). */
const NO_STORE: RequestInit = typeof navigator !== 'undefined' && navigator.userAgent === 'Cloudflare-Workers' ? {} : { cache: 'no-store' };
const DELETE_PARALLEL = 8;

/** Check an endpoint URL: https, or http to a loopback host; no credentials, query or fragment. */
export function checkEndpoint(endpoint: string): URL {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch (e) {
    throw new StrataError('invalid-argument', `The S3 endpoint "${redactSecrets(endpoint).slice(0, 200)}" is not a URL; give e.g. https://s3.example.com (AWS_ENDPOINT_URL_S3).`, { cause: e });
  }
  if (u.username !== '' || u.password !== '') throw new StrataError('invalid-argument', 'The S3 endpoint URL carries credentials; remove them and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a credentials file) instead.');
  if (u.search !== '' || u.hash !== '') throw new StrataError('invalid-argument', `The S3 endpoint ${u.origin} has a query or a fragment; give just scheme, host, port (and a path if the service needs one).`);
  if (u.protocol === 'http:') {
    if (!isLoopback(u.hostname)) {
      throw new StrataError('untrusted', `The S3 endpoint ${u.origin} is plain http to another host: anyone on the path could read the data and replay requests. Use https (plain http is allowed only to 127.0.0.1, localhost and ::1).`);
    }
  } else if (u.protocol !== 'https:') {
    throw new StrataError('invalid-argument', `The S3 endpoint ${u.origin} is not an http(s) URL.`);
  }
  return u;
}

export class S3ObjectStore implements ObjectStore {
  readonly description: string;
  readonly bucket: string;
  readonly prefix: string;
  /** true once the server honoured `If-None-Match: *`, false once it refused it, undefined before */
  atomicIfAbsent: boolean | undefined;
  private batchDelete: boolean | undefined;
  private readonly keyPrefix: string;
  private readonly base: string;
  private readonly bucketUrl: string;
  private readonly client: AwsClient | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly timeoutMs: number;
  private readonly maxObjectBytes: number;
  private readonly hasCredentials: boolean;
  private readonly onWarning: ((message: string) => void) | undefined;
  private readonly listPageSize: number;

  constructor(options: S3ObjectStoreOptions) {
    if (!BUCKET_NAME.test(options.bucket)) {
      throw new StrataError('invalid-argument', `"${options.bucket.slice(0, 80)}" is not a valid bucket name: 3–63 lower-case letters, digits, '.', '-' or '_'.`);
    }
    const prefix = options.prefix ?? '';
    if (prefix !== '' && (prefix.length > 512 || !OBJECT_KEY.test(prefix))) {
      throw new StrataError('invalid-argument', `The prefix "${prefix.slice(0, 80)}" is not allowed: use letters, digits, '.', '_', '-', '@' in '/'-separated segments.`);
    }
    const region = options.region ?? 'us-east-1';
    if (!/^[a-z0-9-]{1,64}$/.test(region)) throw new StrataError('invalid-argument', `"${region.slice(0, 80)}" is not an S3 region name (e.g. us-east-1, or auto for R2).`);
    this.bucket = options.bucket;
    this.prefix = prefix;
    this.keyPrefix = prefix === '' ? '' : `${prefix}/`;
    const endpoint = checkEndpoint(options.endpoint ?? `https://s3.${region}.amazonaws.com`);
    const pathStyle = options.pathStyle ?? (options.endpoint !== undefined || options.bucket.includes('.'));
    const path = endpoint.pathname.replace(/\/+$/, '');
    if (pathStyle) {
      this.base = `${endpoint.origin}${path}/${options.bucket}/`;
      this.bucketUrl = `${endpoint.origin}${path}/${options.bucket}`;
    } else {
      const origin = `${endpoint.protocol}//${options.bucket}.${endpoint.host}`;
      this.base = `${origin}${path}/`;
      this.bucketUrl = `${origin}${path}/`;
    }
    const c = options.credentials;
    this.hasCredentials = c !== undefined;
    if (c) {
      if (c.accessKeyId === '' || c.secretAccessKey === '') throw new StrataError('invalid-argument', 'The S3 access key ID and secret access key must both be given (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).');
      registerSecret(c.secretAccessKey);
      if (c.sessionToken) registerSecret(c.sessionToken);
      this.client = new AwsClient({ accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}), service: 's3', region, retries: 0 });
    }
    this.fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.retries = options.retries ?? 4;
    this.retryDelayMs = options.retryDelayMs ?? 200;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.maxObjectBytes = options.maxObjectBytes ?? 256 << 20;
    this.onWarning = options.onWarning;
    this.listPageSize = pageSize(options.listPageSize);
    this.description = `s3://${options.bucket}${prefix === '' ? '' : `/${prefix}`}${options.endpoint !== undefined ? ` at ${endpoint.host}` : ''}`;
  }

  async get(key: string, range?: ObjectRange, signal?: AbortSignal): Promise<Uint8Array | null> {
    checkObjectKey(key);
    if (range) checkRange(range);
    if (range && range.length === 0) return (await this.head(key, signal)) ? new Uint8Array(0) : null;
    const headers: Record<string, string> = range ? { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {};
    const res = await this.request('GET', this.url(key), { headers, signal, what: `GET ${key}` });
    const what = `${key} from ${this.description}`;
    if (res.status === 404) {
      const info = await errorInfo(res, signal);
      if (info.code === 'NoSuchBucket') throw this.error(res.status, info, `GET ${key}`);
      return null;
    }
    if (res.status === 416 && range) {
      await discard(res);
      return new Uint8Array(0);
    }
    if (res.status === 206) {
      if (!range) {
        await discard(res);
        throw new StrataError('corrupt', `${this.description} answered a whole-object GET of ${key} with a partial answer (206).`);
      }
      // The answer may cover more than asked (some servers widen ranges): its part in our range
      // is read, the rest is never read. It must start at or before our offset.
      const cr = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16}|\*)$/.exec(res.headers.get('content-range') ?? '');
      const first = cr ? Number(cr[1]) : NaN;
      const last = cr ? Number(cr[2]) : NaN;
      const total = cr && cr[3] !== '*' ? Number(cr[3]) : undefined;
      if (!cr || last < first || first > range.offset || (total !== undefined && last >= total)) {
        await discard(res);
        throw new StrataError('corrupt', `${this.description} answered a range request for ${key} with another range (${(res.headers.get('content-range') ?? 'none').slice(0, 80)}); it is refused.`);
      }
      if (range.offset > last) {
        await discard(res);
        if (total !== undefined && range.offset >= total) return new Uint8Array(0);
        throw new StrataError('corrupt', `${this.description} answered a range request for ${key} with a range before it (${(res.headers.get('content-range') ?? '').slice(0, 80)}).`);
      }
      const want = Math.min(range.length, last - range.offset + 1);
      const body = await readSlice(res, range.offset - first, want, what, signal);
      if (body.length !== want) throw new StrataError('io', `${this.description} sent ${body.length} of ${want} bytes of ${key}; the answer was cut off. Try again.`);
      return body;
    }
    if (res.status === 200) {
      // a server that ignores Range sends the whole object: read up to the range, cut it off there
      if (range) return readSlice(res, range.offset, range.length, what, signal);
      return readBody(res, this.maxObjectBytes, what, signal, true);
    }
    throw this.error(res.status, await errorInfo(res, signal), `GET ${key}`);
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    checkObjectKey(key);
    const res = await this.request('HEAD', this.url(key), { signal, what: `HEAD ${key}` });
    if (res.status === 404) {
      await discard(res);
      return null;
    }
    if (res.status !== 200) throw this.error(res.status, await errorInfo(res, signal), `HEAD ${key}`);
    await discard(res);
    const len = res.headers.get('content-length') ?? '';
    if (!/^\d{1,16}$/.test(len) || !Number.isSafeInteger(Number(len))) throw new StrataError('corrupt', `${this.description} gave no valid size for ${key} (Content-Length "${len.slice(0, 40)}").`);
    const modified = Date.parse(res.headers.get('last-modified') ?? '');
    return Number.isFinite(modified) ? { key, size: Number(len), modified } : { key, size: Number(len) };
  }

  async put(key: string, data: Uint8Array, options?: { ifAbsent?: boolean; signal?: AbortSignal }): Promise<boolean> {
    checkObjectKey(key);
    const signal = options?.signal;
    const sha = await sha256Hex(data);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'x-amz-content-sha256': sha };
    if (options?.ifAbsent) {
      if (await this.head(key, signal)) return false;
      if (this.atomicIfAbsent !== false) {
        const res = await this.request('PUT', this.url(key), { headers: { ...headers, 'if-none-match': '*' }, body: data, signal, what: `PUT ${key}`, retry409: true });
        if (res.ok) {
          await discard(res);
          return true;
        }
        if (res.status === 412) {
          await discard(res);
          this.atomicIfAbsent = true;
          return false;
        }
        const info = await errorInfo(res, signal);
        if (!refusesConditional(res.status, info)) throw this.error(res.status, info, `PUT ${key}`);
        this.atomicIfAbsent = false;
        this.onWarning?.(`warning: ${this.description} does not support conditional PUT (If-None-Match: *); objects are checked with HEAD before they are written, which is not atomic against another writer.`);
      }
    }
    const res = await this.request('PUT', this.url(key), { headers, body: data, signal, what: `PUT ${key}` });
    if (!res.ok) throw this.error(res.status, await errorInfo(res, signal), `PUT ${key}`);
    await discard(res);
    return true;
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    if (prefix.length > 1024 || !/^[A-Za-z0-9._@/-]*$/.test(prefix)) {
      throw new StrataError('invalid-argument', `The listing prefix "${prefix.slice(0, 80)}" is not allowed: use letters, digits, '.', '_', '-', '@' and '/'.`);
    }
    const full = this.keyPrefix + prefix;
    let token: string | undefined;
    let last = '';
    for (;;) {
      const q = new URLSearchParams({ 'list-type': '2', 'max-keys': String(this.listPageSize) });
      if (full !== '') q.set('prefix', full);
      if (token !== undefined) q.set('continuation-token', token);
      const res = await this.request('GET', `${this.bucketUrl}?${q}`, { signal, what: `LIST ${prefix}` });
      if (res.status !== 200) throw this.error(res.status, await errorInfo(res, signal), `LIST ${prefix}`);
      const page = parseListPage(new TextDecoder().decode(await readBody(res, MAX_LIST_PAGE_BYTES, `a listing of ${this.description}`, signal)));
      for (const o of page.objects) {
        if (!o.key.startsWith(full)) continue;
        const rel = o.key.slice(this.keyPrefix.length);
        if (rel.length === 0 || rel.length > 1024 || !OBJECT_KEY.test(rel)) continue;
        if (o.key <= last) throw new StrataError('corrupt', `${this.description} listed keys out of order (${rel} after ${last.slice(this.keyPrefix.length)}); the listing is refused.`);
        last = o.key;
        yield o.modified === undefined ? { key: rel, size: o.size } : { key: rel, size: o.size, modified: o.modified };
      }
      if (!page.truncated) return;
      if (page.next === undefined || page.next === token || page.next.length > 4096) {
        throw new StrataError('corrupt', `${this.description} said its listing goes on but gave no new continuation token.`);
      }
      token = page.next;
    }
  }

  async delete(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    for (const k of keys) checkObjectKey(k);
    aborted(signal);
    const unique = [...new Set(keys)];
    for (let i = 0; i < unique.length; i += DELETE_BATCH) {
      const batch = unique.slice(i, i + DELETE_BATCH);
      if (this.batchDelete !== false && batch.length > 1 && (await this.deleteBatch(batch, signal))) continue;
      await this.deleteEach(batch, signal);
    }
  }

  /** DeleteObjects; false when the server does not support it (then single DELETEs are used from now on). */
  private async deleteBatch(keys: readonly string[], signal?: AbortSignal): Promise<boolean> {
    const body = new TextEncoder().encode(deleteBody(keys.map((k) => this.keyPrefix + k)));
    const sha = await crypto.subtle.digest('SHA-256', body);
    const headers = {
      'content-type': 'application/xml',
      'x-amz-content-sha256': hex(new Uint8Array(sha)),
      'x-amz-sdk-checksum-algorithm': 'SHA256',
      'x-amz-checksum-sha256': base64(new Uint8Array(sha)),
    };
    const res = await this.request('POST', `${this.bucketUrl}?delete`, { headers, body, signal, what: 'DELETE (batch)' });
    if (res.status !== 200) {
      const info = await errorInfo(res, signal);
      if (this.batchDelete === undefined && (res.status === 501 || (res.status === 400 && /NotImplemented|InvalidRequest|InvalidDigest|MissingContentMD5|BadDigest|InvalidArgument/.test(info.code ?? '')))) {
        this.batchDelete = false;
        return false;
      }
      throw this.error(res.status, info, 'DELETE (batch)');
    }
    this.batchDelete = true;
    const xml = new TextDecoder().decode(await readBody(res, MAX_LIST_PAGE_BYTES, `the delete answer of ${this.description}`, signal));
    const failed = parseDeleteErrors(xml).filter((e) => e.code !== 'NoSuchKey');
    if (failed.length > 0) {
      const f = failed[0]!;
      const code: ErrorCode = f.code === 'AccessDenied' ? 'permission-denied' : 'io';
      throw new StrataError(code, redactSecrets(`${this.description} could not delete ${failed.length} object(s), e.g. ${f.key.slice(0, 200)}: ${f.code.slice(0, 80)} ${f.message.slice(0, 200)}`));
    }
    return true;
  }

  private async deleteEach(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        const res = await this.request('DELETE', this.url(key), { signal, what: `DELETE ${key}` });
        if (res.status !== 204 && res.status !== 200 && res.status !== 404) throw this.error(res.status, await errorInfo(res, signal), `DELETE ${key}`);
        await discard(res);
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_PARALLEL, keys.length) }, worker));
  }

  private url(key: string): string {
    return this.base + this.keyPrefix + key;
  }

  /**
   * One request, signed anew for each attempt; retried after network errors, 5xx, 429 (and 409
   * for a conditional PUT). Returns the answer (any status but a redirect); the caller reads it.
   */
  private async request(method: string, url: string, o: { headers?: Record<string, string>; body?: Uint8Array; signal?: AbortSignal | undefined; what: string; retry409?: boolean }): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      aborted(o.signal);
      if (attempt > 0) await sleep(Math.min(5000, this.retryDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2), o.signal);
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const signal = o.signal ? anySignal([o.signal, timeout]) : timeout;
      let res: Response;
      try {
        const init: RequestInit = { method, headers: o.headers ?? {}, ...(o.body ? { body: o.body as Uint8Array<ArrayBuffer> } : {}) };
        let headers: Headers = new Headers(init.headers);
        if (this.client) headers = (await this.client.sign(url, init)).headers;
        res = await this.fetchFn(url, { method, headers, ...(o.body ? { body: o.body as Uint8Array<ArrayBuffer> } : {}), redirect: 'manual', signal, ...NO_STORE });
      } catch (e) {
        if (o.signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled', { cause: e });
        const tls = tlsFailure(e);
        if (tls !== null) throw untrustedCertificate(this.description, tls);
        if (attempt < this.retries) continue;
        if (timeout.aborted) throw new StrataError('timeout', `${this.description} did not answer ${o.what} within ${this.timeoutMs} ms (${attempt + 1} attempts); check the endpoint and the network.`, { cause: e });
        throw new StrataError('io', redactSecrets(`Cannot reach ${this.description} (${o.what}: ${(e as Error)?.message ?? String(e)}; ${attempt + 1} attempts); check the endpoint (AWS_ENDPOINT_URL_S3) and the network.`), { cause: e });
      }
      if (res.type === 'opaqueredirect' || (res.status >= 300 && res.status < 400 && res.status !== 304)) {
        await discard(res);
        const region = res.headers.get('x-amz-bucket-region');
        if (region !== null && /^[a-z0-9-]{1,64}$/.test(region)) {
          throw new StrataError('invalid-argument', `The bucket ${this.bucket} is in region ${region}; set AWS_REGION=${region} (redirects are not followed).`);
        }
        throw new StrataError('untrusted', `${this.description} redirected ${o.what} (HTTP ${res.status}); redirects are not followed. Give the final endpoint (AWS_ENDPOINT_URL_S3) and the bucket's region (AWS_REGION).`);
      }
      const retryable = res.status >= 500 || res.status === 429 || (o.retry409 === true && res.status === 409);
      if (retryable && attempt < this.retries) {
        await discard(res);
        continue;
      }
      return res;
    }
  }

  /** The StrataError for a failed answer: code by status, the server's code and message, never a secret. */
  private error(status: number, info: { code?: string; message?: string }, what: string): StrataError {
    const said = info.code !== undefined ? ` (${info.code}${info.message ? `: ${info.message}` : ''})` : '';
    let code: ErrorCode = 'io';
    let hint = '';
    if (status === 401 || status === 403) {
      code = 'permission-denied';
      if (!this.hasCredentials) hint = ' No credentials were given: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE (a file of mode 0600).';
      else if (/Signature|AccessKey|InvalidToken|ExpiredToken|TokenRefresh/i.test(info.code ?? '')) hint = ' Check the access key ID and secret access key (and the session token, if any) and the clock.';
      else hint = ` Check that the credentials may do this on this bucket and prefix${what.startsWith('HEAD') ? ' (S3 also answers 403 for a missing object when the credentials lack s3:ListBucket)' : ''}.`;
    } else if (status === 404) {
      code = 'not-found';
      hint = info.code === 'NoSuchBucket' ? ` The bucket ${this.bucket} does not exist; create it first.` : '';
    } else if (status === 400 && info.code === 'AuthorizationHeaderMalformed') {
      code = 'invalid-argument';
      hint = ' The region is probably wrong: set AWS_REGION to the bucket\'s region (R2: auto).';
    } else if (status >= 500 || status === 429) {
      hint = ` The server kept failing after ${this.retries + 1} attempts; try again later.`;
    }
    return new StrataError(code, redactSecrets(`${this.description} refused ${what}: HTTP ${status}${said}.${hint}`));
  }
}

function pageSize(n: number | undefined): number {
  if (n === undefined) return 1000;
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new StrataError('invalid-argument', `listPageSize must be an integer from 1 to 1000, not ${n}.`);
  return n;
}

function checkRange(range: ObjectRange): void {
  if (!Number.isSafeInteger(range.offset) || !Number.isSafeInteger(range.length) || range.offset < 0 || range.length < 0) {
    throw new StrataError('invalid-argument', `The range ${range.offset}+${range.length} is not a pair of non-negative integers.`);
  }
}

/** Does this error answer to a PUT with `If-None-Match: *` mean the server does not support the header? */
function refusesConditional(status: number, info: { code?: string; message?: string }): boolean {
  if (status === 501) return true;
  if (status !== 400) return false;
  return info.code === 'NotImplemented' || /if-none-match|conditional/i.test(`${info.message ?? ''}`);
}

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled');
}

function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (any) return any.call(AbortSignal, signals);
  const c = new AbortController();
  for (const s of signals) {
    if (s.aborted) c.abort(s.reason);
    else s.addEventListener('abort', () => c.abort(s.reason), { once: true });
  }
  return c.signal;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return abortableSleep(ms, signal, 'the object store operation was cancelled');
}

async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}

/** Error code and message of an error answer (reads at most 64 KiB of it). */
async function errorInfo(res: Response, signal?: AbortSignal): Promise<{ code?: string; message?: string }> {
  let text = '';
  try {
    const body = await readBody(res, MAX_ERROR_BYTES, 'an error answer', signal, false, true);
    text = new TextDecoder().decode(body);
  } catch (e) {
    if (signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled', { cause: e });
  }
  const info = parseError(text);
  const clean = (s: string | undefined) => (s === undefined ? undefined : s.replace(/[\u0000-\u001f\u007f]+/g, ' '));
  return { ...(info.code !== undefined ? { code: clean(info.code)! } : {}), ...(info.message !== undefined ? { message: clean(info.message)! } : {}) };
}

/**
 * The body, read in chunks, at most `limit` bytes: more is refused (`corrupt`), or cut at
 * `limit` when `truncate`. With `checkLength`, a declared Content-Length above the limit is
 * refused before anything is read and one that disagrees with the body is an error.
 */
async function readBody(res: Response, limit: number, what: string, signal?: AbortSignal, checkLength = false, truncate = false): Promise<Uint8Array> {
  const declared = res.headers.get('content-length');
  if (checkLength && declared !== null && /^\d+$/.test(declared) && Number(declared) > limit) {
    await discard(res);
    throw new StrataError('invalid-argument', `${what} is ${declared} bytes, more than the ${limit} bytes read at once; read it by ranges.`);
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (total + value.length > limit) {
        await reader.cancel().catch(() => {});
        if (truncate) {
          chunks.push(value.subarray(0, limit - total));
          total = limit;
          break;
        }
        throw new StrataError('corrupt', `The server sent more than the ${limit} bytes expected for ${what}; the answer is refused.`);
      }
      chunks.push(value);
      total += value.length;
    }
  } catch (e) {
    if (e instanceof StrataError) throw e;
    if (signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled', { cause: e });
    throw new StrataError('io', `Reading ${what} failed (${(e as Error)?.message ?? String(e)}); try again.`, { cause: e });
  }
  const out = concat(chunks, total);
  if (checkLength && declared !== null && /^\d+$/.test(declared) && Number(declared) !== total) {
    throw new StrataError('io', `${what}: the server sent ${total} of ${declared} bytes; the answer was cut off. Try again.`);
  }
  return out;
}

/**
 * `want` bytes after the first `skip` bytes of the body (fewer if it ends first), read in
 * chunks; the rest of the body is never read (the stream is cancelled), so a body longer than
 * announced or asked costs nothing.
 */
async function readSlice(res: Response, skip: number, want: number, what: string, signal?: AbortSignal): Promise<Uint8Array> {
  if (!res.body || want === 0) {
    await discard(res);
    return new Uint8Array(0);
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let pos = 0;
  let kept = 0;
  const end = skip + want;
  try {
    while (pos < end) {
      const { done, value } = await reader.read();
      if (done) break;
      const from = Math.max(0, skip - pos);
      const to = Math.min(value.length, end - pos);
      if (to > from) {
        chunks.push(value.slice(from, to));
        kept += to - from;
      }
      pos += value.length;
    }
    if (pos >= end) await reader.cancel().catch(() => {});
  } catch (e) {
    if (signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled', { cause: e });
    throw new StrataError('io', `Reading ${what} failed (${(e as Error)?.message ?? String(e)}); try again.`, { cause: e });
  }
  return concat(chunks, kept);
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.byteOffset === 0 && chunks[0]!.byteLength === chunks[0]!.buffer.byteLength) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>)));
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

function base64(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}
