import { StrataError, type ErrorCode } from '../errors.js';
import { redactUrl, registerSecret } from '../util/redact.js';
import { isLoopback } from '../util/loopback.js';
import { fetchSameOrigin, tlsFailure, untrustedCertificate } from './guarded-fetch.js';
import { BaseStore, checkName, NAME_PATTERN, type NamespaceLock, type OpenOptions, type Store, type StoreNamespace } from './store.js';

/**
 * A namespace on a store server (`stratadisk serve-store DIR`, src/store/store-server.ts) over
 * HTTP, with global `fetch`: works in Node and in browsers (pages and workers). The URL names the
 * server and, optionally, one subdirectory of its DIR: `http://127.0.0.1:7000/` or
 * `http://127.0.0.1:7000/vol1`. The token goes in the fragment (`...#token=T`, never sent in
 * the URL) or in `options.token`, and travels as `Authorization: Bearer T`.
 *
 * Wire protocol (all POST to the namespace URL with `?op=...`; answers are JSON unless noted;
 * errors are JSON `{code, message}` with a 4xx/5xx status):
 * - `list`, `exists&name`, `delete&name`, `sync`, `open&name[&create=1]` -> {size},
 *   `flush&name` (fsync on the server), `truncate&name&size`, `lock` -> {lease, ttlMs},
 *   `renew&lease` -> {ttlMs}, `unlock&lease`. A lease expires `ttlMs` after it was taken or
 *   renewed (the client renews it every third of that); while it is held, every change of the
 *   namespace carries `&lease=` (the server refuses changes without it: `locked`).
 * - `write&name`: body = records `[offset lo u32][offset hi u32][length u32][bytes]` (LE),
 *   applied in order -> {size}.
 * - `read&name`: body = records `[offset lo u32][offset hi u32][length u32]` -> the bytes of
 *   every range, concatenated (application/octet-stream).
 *
 * Redirects are followed only within the server's origin (never https -> http); a refused
 * redirect or an untrusted TLS certificate fails with `untrusted` at once. In Node, trust a
 * private CA with NODE_EXTRA_CA_CERTS=ca.pem. The token never appears in messages.
 *
 * Batching: the writes (and reads) of a store issued in the same turn go out as one request of
 * up to `maxRequestBytes`, with up to `maxInFlight` requests in flight; while all are busy, new
 * requests wait in the queue and grow into bigger batches. A write resolves when the server has
 * applied it; `flush` waits for every earlier write, then asks the server to fsync.
 */
export interface RemoteNamespaceOptions {
  /** the server's token (else taken from the URL fragment `#token=`) */
  token?: string;
  readOnly?: boolean;
  /** bytes per request (default 8 MiB; the server's default limit is 64 MiB) */
  maxRequestBytes?: number;
  /** requests in flight per store (default 4) */
  maxInFlight?: number;
  /** per-request timeout in ms (default 60 s) */
  timeoutMs?: number;
  /** retries of a request that failed to reach the server or got a 5xx (default 3; all ops are idempotent) */
  retries?: number;
  /**
   * Allow plain http:// to a host that is not loopback (else refused: the token and the data
   * would cross the network in clear). The URL fragment `#insecure=1` says the same.
   */
  insecure?: boolean;
}

/** Header bytes of one record in a read or write body. */
export const RECORD_HEAD = 12;

const CODES: readonly ErrorCode[] = ['out-of-range', 'invalid-argument', 'corrupt', 'checksum-mismatch', 'quota', 'locked', 'read-only', 'frozen', 'timeout', 'unsupported', 'aborted', 'not-found', 'exists', 'closed', 'io', 'image-changed', 'untrusted', 'unsafe-path', 'permission-denied'];

/** Connection of one namespace: base URL, token, limits, and the request helper. */
class Conn {
  readonly url: string;
  readonly label: string;
  /** the writer lease this namespace holds on the server (sent with every request) */
  lease: string | undefined;
  constructor(
    url: URL,
    private readonly token: string | undefined,
    readonly o: Required<Omit<RemoteNamespaceOptions, 'token' | 'readOnly' | 'insecure'>>,
  ) {
    this.url = `${url.origin}${url.pathname}`;
    this.label = this.url;
  }

  /** POST `op`; returns the parsed JSON, or the raw bytes when `binary`. Retries network failures and 5xx. */
  async call(op: string, params: Record<string, string | number>, body?: Uint8Array<ArrayBuffer>, binary = false): Promise<unknown> {
    const q = new URLSearchParams({ op });
    for (const [k, v] of Object.entries(params)) q.set(k, String(v));
    if (this.lease !== undefined && !q.has('lease')) q.set('lease', this.lease);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let last: unknown;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** (attempt - 1))));
      let res: Response;
      try {
        res = await fetchSameOrigin((i, init) => globalThis.fetch(i, init), `${this.url}?${q}`, { method: 'POST', headers, body: body ?? null, signal: AbortSignal.timeout(this.o.timeoutMs), cache: 'no-store' }, `The store server at ${this.label}`);
      } catch (e) {
        if (e instanceof StrataError) throw e;
        const tls = tlsFailure(e);
        if (tls !== null) throw untrustedCertificate(`the store server at ${this.label}`, tls);
        last = e;
        if (attempt < this.o.retries) continue;
        const name = (e as Error)?.name;
        if (name === 'TimeoutError') throw new StrataError('timeout', `The store server at ${this.label} did not answer ${op} within ${this.o.timeoutMs} ms; check the server and the network, or raise timeoutMs.`, { cause: e });
        throw new StrataError('io', `Cannot reach the store server at ${this.label} (${op}: ${(e as Error)?.message ?? e}); check that \`stratadisk serve-store\` runs there and the URL is right.`, { cause: e });
      }
      if (res.ok) {
        if (binary) return new Uint8Array(await res.arrayBuffer());
        return (await res.json()) as unknown;
      }
      const text = await res.text().catch(() => '');
      let err: { code?: unknown; message?: unknown } = {};
      try {
        err = JSON.parse(text) as typeof err;
      } catch {
        // not our server's error body
      }
      if (res.status >= 500 && attempt < this.o.retries && err.code === undefined) {
        last = new Error(`HTTP ${res.status}`);
        continue;
      }
      void last;
      if (res.status === 401) throw new StrataError('invalid-argument', `The store server at ${this.label} refused the token; pass the token from serve-store's token file (--token-file FILE, or $STRATADISK_TOKEN).`);
      const code = CODES.includes(err.code as ErrorCode) ? (err.code as ErrorCode) : 'io';
      const message = typeof err.message === 'string' ? err.message.slice(0, 2000) : `HTTP ${res.status} ${res.statusText}`;
      throw new StrataError(code, `Store server ${this.label}: ${message}`);
    }
  }
}

export class RemoteNamespace implements StoreNamespace {
  readonly readOnly: boolean;
  private readonly conn: Conn;

  /** `url`: http(s)://host:port/[name][#token=T]. */
  constructor(url: string, options: RemoteNamespaceOptions = {}) {
    let u: URL;
    try {
      u = new URL(url);
    } catch (e) {
      throw new StrataError('invalid-argument', `"${redactUrl(url)}" is not a URL; give the store server's address, e.g. http://127.0.0.1:7000/vol1.`, { cause: e });
    }
    const fragment = new URLSearchParams(u.hash.replace(/^#/, ''));
    const fromHash = fragment.get('token') ?? undefined;
    if (fromHash !== undefined) registerSecret(fromHash);
    if (options.token !== undefined) registerSecret(options.token);
    u.hash = '';
    if (u.username !== '' || u.password !== '') throw new StrataError('invalid-argument', `${redactUrl(url)}: credentials do not go in the URL; pass the token (#token= in a browser, --token-file or $STRATADISK_TOKEN on the command line).`);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new StrataError('invalid-argument', `${u.href} is not an http(s) URL; a store server is reached over HTTP.`);
    if (u.protocol === 'http:' && !isLoopback(u.hostname) && options.insecure !== true && fragment.get('insecure') !== '1') {
      throw new StrataError(
        'invalid-argument',
        `${u.href} is plain HTTP to another host: the token and the data would cross the network in clear, and anyone on the path could change them. Use https:// (serve-store --cert/--key), or allow plain HTTP explicitly (--insecure) on a network you trust.`,
      );
    }
    const segs = u.pathname.split('/').filter((s) => s !== '');
    if (segs.length > 1 || (segs.length === 1 && !NAME_PATTERN.test(segs[0]!))) {
      throw new StrataError('invalid-argument', `${u.href}: the path is at most one plain name (a subdirectory of the server's directory), e.g. /vol1.`);
    }
    this.readOnly = options.readOnly ?? false;
    this.conn = new Conn(u, options.token ?? fromHash, {
      maxRequestBytes: options.maxRequestBytes ?? 8 << 20,
      maxInFlight: options.maxInFlight ?? 4,
      timeoutMs: options.timeoutMs ?? 60_000,
      retries: options.retries ?? 3,
    });
  }

  /** The namespace URL (without the token). */
  get url(): string {
    return this.conn.url;
  }

  async open(name: string, options: OpenOptions = {}): Promise<Store> {
    checkName(name);
    if (this.readOnly && options.create && !(await this.exists(name))) {
      throw new StrataError('read-only', `Cannot create "${name}": the namespace ${this.conn.label} is read-only.`);
    }
    const r = (await this.conn.call('open', { name, create: !this.readOnly && options.create ? 1 : 0 })) as { size: unknown };
    return new RemoteStore(this.conn, name, safeSize(r.size, this.conn.label), this.readOnly || (options.readOnly ?? false));
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    return ((await this.conn.call('exists', { name })) as { exists: unknown }).exists === true;
  }

  async list(): Promise<string[]> {
    const r = (await this.conn.call('list', {})) as { names: unknown };
    if (!Array.isArray(r.names)) throw new StrataError('corrupt', `The store server at ${this.conn.label} sent a malformed list.`);
    return r.names.filter((n): n is string => typeof n === 'string' && NAME_PATTERN.test(n)).sort();
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    if (this.readOnly) throw new StrataError('read-only', `Cannot delete "${name}": the namespace ${this.conn.label} is read-only.`);
    await this.conn.call('delete', { name });
  }

  async sync(): Promise<void> {
    if (this.readOnly) return;
    await this.conn.call('sync', {});
  }

  /**
   * The server takes its directory's writer lock and holds it for us as a lease, renewed every
   * third of its lifetime until `release`; our later changes carry the lease (others are refused).
   */
  async lock(): Promise<NamespaceLock> {
    if (this.readOnly) throw new StrataError('read-only', `Cannot lock ${this.conn.label} for writing: the namespace is read-only.`);
    if (this.conn.lease !== undefined) throw new StrataError('locked', `${this.conn.label} is already locked by this client.`);
    const r = (await this.conn.call('lock', {})) as { lease: unknown; ttlMs?: unknown };
    const lease = r.lease;
    if (typeof lease !== 'string') throw new StrataError('corrupt', `The store server at ${this.conn.label} sent a malformed lock answer.`);
    const ttl = typeof r.ttlMs === 'number' && Number.isFinite(r.ttlMs) && r.ttlMs >= 30 ? r.ttlMs : 30_000;
    this.conn.lease = lease;
    let held = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const renew = () => {
      timer = setTimeout(() => {
        if (!held) return;
        // a failed renewal is not fatal here: while the lease lives, the next one may succeed; once
        // it is gone the server refuses our changes with `locked`, which the writer reports
        this.conn.call('renew', { lease }).then(
          () => held && renew(),
          (e: unknown) => held && !(e instanceof StrataError && e.code === 'locked') && renew(),
        );
      }, ttl / 3);
      (timer as { unref?: () => void }).unref?.();
    };
    renew();
    return {
      release: async () => {
        if (!held) return;
        held = false;
        if (timer !== undefined) clearTimeout(timer);
        if (this.conn.lease === lease) this.conn.lease = undefined;
        await this.conn.call('unlock', { lease });
      },
    };
  }
}

function safeSize(v: unknown, label: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new StrataError('corrupt', `The store server at ${label} sent an invalid size.`);
  return v;
}

/** Smallest request worth splitting a queue into. */
const SPREAD_MIN = 256 * 1024;

/** One piece of a caller's read or write, and the caller's shared completion. */
interface Piece {
  offset: number;
  data: Uint8Array;
  ticket: Ticket;
}
interface Ticket {
  left: number;
  resolve(): void;
  reject(e: unknown): void;
}

class RemoteStore extends BaseStore {
  size: number;
  readonly resizable = true;
  private readonly writes: Piece[] = [];
  private readonly reads: Piece[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** writes not yet acknowledged: flush, truncate and close wait for them */
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly conn: Conn,
    private readonly name: string,
    size: number,
    readOnly: boolean,
  ) {
    super(`${conn.label} ${name}`, readOnly);
    this.size = size;
  }

  protected _readInto(offset: number, target: Uint8Array): Promise<void> {
    return this.enqueue(this.reads, offset, target);
  }

  protected _write(offset: number, data: Uint8Array): Promise<void> {
    const p = this.enqueue(this.writes, offset, data);
    const tracked = p.then(
      () => {
        this.size = Math.max(this.size, offset + data.length);
      },
    );
    this.pending.add(tracked);
    const drop = () => this.pending.delete(tracked);
    tracked.then(drop, drop);
    return tracked;
  }

  private enqueue(queue: Piece[], offset: number, data: Uint8Array): Promise<void> {
    const max = this.conn.o.maxRequestBytes;
    return new Promise<void>((resolve, reject) => {
      const ticket: Ticket = { left: Math.ceil(data.length / max), resolve, reject };
      for (let at = 0; at < data.length; at += max) queue.push({ offset: offset + at, data: data.subarray(at, Math.min(data.length, at + max)), ticket });
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  /** Send batches while there is room in flight: writes first (reads may wait for them to land). */
  private pump(): void {
    while (this.inFlight < this.conn.o.maxInFlight && (this.writes.length > 0 || this.reads.length > 0)) {
      const isWrite = this.writes.length > 0;
      const queue = isWrite ? this.writes : this.reads;
      // Spread what is queued over the free request slots (several in flight beat one big one),
      // in requests of at least SPREAD_MIN bytes and at most maxRequestBytes.
      let queued = 0;
      for (const p of queue) queued += p.data.length;
      const free = this.conn.o.maxInFlight - this.inFlight;
      const max = this.conn.o.maxRequestBytes;
      const batch = take(queue, Math.min(max, Math.max(Math.min(SPREAD_MIN, max), Math.ceil(queued / free))));
      this.inFlight++;
      (isWrite ? this.sendWrites(batch) : this.sendReads(batch))
        .then(
          () => settle(batch, null),
          (e: unknown) => settle(batch, e),
        )
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }

  private async sendWrites(batch: Piece[]): Promise<void> {
    let total = 0;
    for (const p of batch) total += RECORD_HEAD + p.data.length;
    const body = new Uint8Array(total);
    const dv = new DataView(body.buffer);
    let at = 0;
    for (const p of batch) {
      putHead(dv, at, p.offset, p.data.length);
      body.set(p.data, at + RECORD_HEAD);
      at += RECORD_HEAD + p.data.length;
    }
    await this.conn.call('write', { name: this.name }, body);
  }

  private async sendReads(batch: Piece[]): Promise<void> {
    const body = new Uint8Array(batch.length * RECORD_HEAD);
    const dv = new DataView(body.buffer);
    let total = 0;
    batch.forEach((p, i) => {
      putHead(dv, i * RECORD_HEAD, p.offset, p.data.length);
      total += p.data.length;
    });
    const got = (await this.conn.call('read', { name: this.name }, body, true)) as Uint8Array;
    if (got.length !== total) throw new StrataError('corrupt', `The store server at ${this.conn.label} answered a read of ${total} bytes with ${got.length}; the bytes were not used.`);
    let at = 0;
    for (const p of batch) {
      p.data.set(got.subarray(at, at + p.data.length));
      at += p.data.length;
    }
  }

  /** Every write that completed before now has reached the server (errors belong to their callers). */
  private async drain(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  protected async _flush(): Promise<void> {
    await this.drain();
    await this.conn.call('flush', { name: this.name });
  }

  protected async _truncate(size: number): Promise<void> {
    await this.drain();
    const r = (await this.conn.call('truncate', { name: this.name, size })) as { size: unknown };
    this.size = safeSize(r.size, this.conn.label);
  }

  protected async _close(): Promise<void> {
    await this.drain();
  }
}

/** Pieces from the head of `queue` up to `max` bytes (at least one). */
function take(queue: Piece[], max: number): Piece[] {
  let n = 0;
  let bytes = 0;
  while (n < queue.length && (n === 0 || bytes + queue[n]!.data.length <= max)) bytes += queue[n++]!.data.length;
  return queue.splice(0, n);
}

function settle(batch: Piece[], error: unknown): void {
  for (const p of batch) {
    if (error !== null) {
      if (p.ticket.left > 0) {
        p.ticket.left = 0;
        p.ticket.reject(error);
      }
    } else if (--p.ticket.left === 0) p.ticket.resolve();
  }
}

function putHead(dv: DataView, at: number, offset: number, length: number): void {
  dv.setUint32(at, offset % 2 ** 32, true);
  dv.setUint32(at + 4, Math.floor(offset / 2 ** 32), true);
  dv.setUint32(at + 8, length, true);
}
