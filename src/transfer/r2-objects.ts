/**
 * An ObjectStore over a Cloudflare Workers R2 binding (`env.BUCKET` in a Worker, or
 * `await miniflare.getR2Bucket('B')` in Node). The binding is typed structurally (only what
 * is used here), so no @cloudflare/workers-types is needed.
 *
 * `put(..., { ifAbsent })` is atomic: R2's `onlyIf: { etagDoesNotMatch: '*' }` makes the put
 * conditional on the key not existing, and R2 answers `null` when it does. R2 refuses a range
 * that starts at or past the end (and one of length 0), so those are answered from `head`.
 * The binding takes no AbortSignal: the signal is checked before each call and after it.
 */
import { StrataError } from '../errors.js';
import { checkObjectKey } from './memory-objects.js';
import { OBJECT_KEY, type ObjectInfo, type ObjectRange, type ObjectStore } from './object-store.js';

export interface R2ObjectLike {
  key: string;
  size: number;
  uploaded: Date;
}

export interface R2ObjectBodyLike extends R2ObjectLike {
  arrayBuffer(): Promise<ArrayBuffer>;
}

export interface R2BucketLike {
  get(key: string, options?: { range?: { offset: number; length: number } }): Promise<R2ObjectBodyLike | null>;
  head(key: string): Promise<R2ObjectLike | null>;
  put(key: string, value: ArrayBuffer | ArrayBufferView, options?: { onlyIf?: { etagDoesNotMatch?: string } }): Promise<R2ObjectLike | null>;
  list(options?: { prefix?: string; cursor?: string; limit?: number }): Promise<{ objects: R2ObjectLike[]; truncated: boolean; cursor?: string }>;
  delete(keys: string | string[]): Promise<void>;
}

export interface R2ObjectStoreOptions {
  /** key prefix inside the bucket, without leading or trailing '/' */
  prefix?: string;
  /** largest object read whole by `get` without a range (default 256 MiB) */
  maxObjectBytes?: number;
  /** for messages, e.g. the binding's name */
  name?: string;
  /** keys per listing page, 1–1000 (default 1000) */
  listPageSize?: number;
}

const DELETE_BATCH = 1000;

export class R2ObjectStore implements ObjectStore {
  readonly description: string;
  private readonly keyPrefix: string;
  private readonly maxObjectBytes: number;
  private readonly listPageSize: number;

  constructor(
    private readonly bucket: R2BucketLike,
    options: R2ObjectStoreOptions = {},
  ) {
    const prefix = options.prefix ?? '';
    if (prefix !== '' && (prefix.length > 512 || !OBJECT_KEY.test(prefix))) {
      throw new StrataError('invalid-argument', `The prefix "${prefix.slice(0, 80)}" is not allowed: use letters, digits, '.', '_', '-', '@' in '/'-separated segments.`);
    }
    this.keyPrefix = prefix === '' ? '' : `${prefix}/`;
    this.maxObjectBytes = options.maxObjectBytes ?? 256 << 20;
    const page = options.listPageSize ?? 1000;
    if (!Number.isInteger(page) || page < 1 || page > 1000) throw new StrataError('invalid-argument', `listPageSize must be an integer from 1 to 1000, not ${page}.`);
    this.listPageSize = page;
    this.description = `r2:${options.name ?? 'bucket'}${prefix === '' ? '' : `/${prefix}`}`;
  }

  async get(key: string, range?: ObjectRange, signal?: AbortSignal): Promise<Uint8Array | null> {
    checkObjectKey(key);
    if (range && (!Number.isSafeInteger(range.offset) || !Number.isSafeInteger(range.length) || range.offset < 0 || range.length < 0)) {
      throw new StrataError('invalid-argument', `The range ${range.offset}+${range.length} is not a pair of non-negative integers.`);
    }
    aborted(signal);
    const full = this.keyPrefix + key;
    if (!range) {
      const o = await this.call('GET', key, () => this.bucket.get(full));
      aborted(signal);
      if (!o) return null;
      if (o.size > this.maxObjectBytes) throw new StrataError('invalid-argument', `${key} in ${this.description} is ${o.size} bytes, more than the ${this.maxObjectBytes} bytes read at once; read it by ranges.`);
      return this.body(o, o.size, key);
    }
    if (range.length > 0) {
      try {
        const o = await this.bucket.get(full, { range: { offset: range.offset, length: range.length } });
        aborted(signal);
        if (!o) return null;
        const expect = Math.max(0, Math.min(range.length, o.size - range.offset));
        return this.body(o, expect, key);
      } catch (e) {
        if (e instanceof StrataError) throw e;
        // R2 refuses a range starting at or past the end: decided below from the size
      }
    }
    const h = await this.call('HEAD', key, () => this.bucket.head(full));
    aborted(signal);
    if (!h) return null;
    if (range.offset >= h.size || range.length === 0) return new Uint8Array(0);
    throw new StrataError('io', `${this.description} failed to read ${range.length} bytes at ${range.offset} of ${key} (${h.size} bytes); try again.`);
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    checkObjectKey(key);
    aborted(signal);
    const h = await this.call('HEAD', key, () => this.bucket.head(this.keyPrefix + key));
    aborted(signal);
    return h ? info(key, h) : null;
  }

  async put(key: string, data: Uint8Array, options?: { ifAbsent?: boolean; signal?: AbortSignal }): Promise<boolean> {
    checkObjectKey(key);
    aborted(options?.signal);
    const r = await this.call('PUT', key, () => this.bucket.put(this.keyPrefix + key, data, options?.ifAbsent ? { onlyIf: { etagDoesNotMatch: '*' } } : {}));
    return r !== null;
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    aborted(signal);
    const full = this.keyPrefix + prefix;
    let cursor: string | undefined;
    let last = '';
    for (;;) {
      const page = await this.call('LIST', prefix, () => this.bucket.list({ prefix: full, limit: this.listPageSize, ...(cursor !== undefined ? { cursor } : {}) }));
      aborted(signal);
      for (const o of page.objects) {
        if (!o.key.startsWith(full)) continue;
        const rel = o.key.slice(this.keyPrefix.length);
        if (rel.length === 0 || rel.length > 1024 || !OBJECT_KEY.test(rel)) continue;
        if (o.key <= last) throw new StrataError('corrupt', `${this.description} listed keys out of order (${rel}); the listing is refused.`);
        last = o.key;
        yield info(rel, o);
      }
      if (!page.truncated) return;
      if (page.cursor === undefined || page.cursor === cursor) throw new StrataError('corrupt', `${this.description} said its listing goes on but gave no new cursor.`);
      cursor = page.cursor;
    }
  }

  async delete(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    for (const k of keys) checkObjectKey(k);
    const unique = [...new Set(keys)];
    for (let i = 0; i < unique.length; i += DELETE_BATCH) {
      aborted(signal);
      const batch = unique.slice(i, i + DELETE_BATCH).map((k) => this.keyPrefix + k);
      await this.call('DELETE', batch[0]!, () => this.bucket.delete(batch));
    }
  }

  private async body(o: R2ObjectBodyLike, expect: number, key: string): Promise<Uint8Array> {
    const buf = new Uint8Array(await this.call('GET', key, () => o.arrayBuffer()));
    if (buf.length !== expect) {
      throw new StrataError(buf.length > expect ? 'corrupt' : 'io', `${this.description} returned ${buf.length} bytes of ${key} where ${expect} were expected.`);
    }
    return buf;
  }

  private async call<T>(op: string, key: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof StrataError) throw e;
      const msg = String((e as Error)?.message ?? e).slice(0, 300);
      throw new StrataError('io', `${this.description}: ${op} ${key.slice(0, 200)} failed (${msg}).`, { cause: e });
    }
  }
}

function info(key: string, o: R2ObjectLike): ObjectInfo {
  const t = o.uploaded instanceof Date ? o.uploaded.getTime() : NaN;
  return Number.isFinite(t) ? { key, size: o.size, modified: t } : { key, size: o.size };
}

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled');
}
