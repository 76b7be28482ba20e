/**
 * A StoreNamespace over an ObjectStore (S3, R2, a directory of objects, memory), so a volume can
 * live in a bucket and `copy` can move chains into and out of it. Each store is a set of
 * fixed-size part objects plus a size record (object-part-file.ts); the writer lock is a lease
 * object. Layout (README.md in this folder, "Volumes in an object store"):
 *
 *   volume/names/<name>          JSON {"format":"stratadisk-object-file/1","size":N,"partSize":P}
 *   volume/parts/<name>/<index>  bytes [index*P, index*P + P) of the store (16 decimal digits)
 *   volume/lock                  JSON {"owner":"<random>","expires":ms}: the writer lease
 *
 * None of these collide with the layout of published images (packs/, segments/, versions/,
 * images/, leases/), so one prefix may hold both. A store exists when its record does: creation
 * puts it (after removing parts a crashed delete left), delete removes it first, then the parts.
 */
import { StrataError } from '../errors.js';
import { checkName, NAME_PATTERN, type NamespaceLock, type OpenOptions, type Store, type StoreNamespace } from '../store/store.js';
import { ObjectPartStore, PartFile, corruptRecord, type PartHost } from './object-part-file.js';
import { PartCache } from './part-cache.js';
import type { ObjectStore } from './object-store.js';

export const NAMES = 'volume/names/';
export const PARTS = 'volume/parts/';
export const LOCK = 'volume/lock';
const FORMAT = 'stratadisk-object-file/1';
const MAX_RECORD_BYTES = 4096;
const INDEX_DIGITS = 16;
export const MIN_PART = 512;
export const MAX_PART = 64 << 20;

export interface ObjectNamespaceOptions {
  readOnly?: boolean;
  /** for messages (never a secret): default the object store's description */
  label?: string;
  /** size of the part objects of stores this namespace creates (a power of two, 512 B–64 MiB; default 4 MiB) */
  partSize?: number;
  /** requests in flight at once, across the namespace (default 8) */
  maxInFlight?: number;
  /** dirty and uploading bytes one store may hold before its writer waits (default 64 MiB) */
  maxBufferBytes?: number;
  /** bytes of clean parts kept for partial reads and read-modify-write (default 32 MiB) */
  cacheBytes?: number;
  /** how long the writer lease lives without renewal (default 60 s; renewed every third of it) */
  lockTtlMs?: number;
  now?: () => number;
}

export class ObjectNamespace implements StoreNamespace, PartHost {
  readonly readOnly: boolean;
  readonly label: string;
  readonly cache: PartCache;
  readonly maxBufferBytes: number;
  private readonly partSize: number;
  private readonly maxInFlight: number;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly files = new Map<string, PartFile>();
  private readonly opening = new Map<string, Promise<PartFile>>();
  private readonly lockTtlMs: number;
  private readonly now: () => number;
  /** the writer lease this namespace holds, if it took one */
  private lease: ObjectLease | undefined;

  constructor(
    readonly objects: ObjectStore,
    options: ObjectNamespaceOptions = {},
  ) {
    this.readOnly = options.readOnly ?? false;
    this.label = options.label ?? objects.description;
    const p = options.partSize ?? 4 << 20;
    if (!isPartSize(p)) throw new StrataError('invalid-argument', `Part size ${p} is not a power of two between ${MIN_PART} and ${MAX_PART} bytes.`);
    this.partSize = p;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 8);
    this.maxBufferBytes = Math.max(2 * p, options.maxBufferBytes ?? 64 << 20);
    this.cache = new PartCache(options.cacheBytes ?? 32 << 20);
    this.lockTtlMs = options.lockTtlMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  // ---- PartHost -------------------------------------------------------------------------

  async slot<T>(fn: () => Promise<T>): Promise<T> {
    while (this.inFlight >= this.maxInFlight) await new Promise<void>((r) => this.waiting.push(r));
    this.inFlight++;
    try {
      return await fn();
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
  }

  partKey(name: string, index: number): string {
    return `${PARTS}${name}/${String(index).padStart(INDEX_DIGITS, '0')}`;
  }

  checkWriter(): void {
    const lease = this.lease;
    if (lease === undefined || this.now() < lease.validUntil) return;
    throw new StrataError(
      'locked',
      `${this.label}: this process's writer lease lapsed ${Math.ceil((this.now() - lease.validUntil) / 1000)} s ago (its renewals failed), so another process may have taken the volume; nothing more is written. Run the command again.`,
    );
  }

  async putRecord(name: string, size: number, partSize: number): Promise<void> {
    this.checkWriter();
    await this.slot(() => this.objects.put(`${NAMES}${name}`, recordBytes(size, partSize)));
  }

  async listParts(name: string): Promise<Set<number>> {
    const prefix = `${PARTS}${name}/`;
    const out = new Set<number>();
    for await (const o of this.objects.list(prefix)) {
      const rest = o.key.slice(prefix.length);
      if (/^[0-9]{16}$/.test(rest)) out.add(Number(rest));
    }
    return out;
  }

  async deleteKeys(keys: string[]): Promise<void> {
    this.checkWriter();
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      await this.slot(() => this.objects.delete(batch));
    }
  }

  // ---- StoreNamespace -------------------------------------------------------------------

  async open(name: string, options: OpenOptions = {}): Promise<Store> {
    checkName(name);
    const readOnly = this.readOnly || (options.readOnly ?? false);
    const file = await this.fileOf(name, options.create ?? false);
    file.refs++;
    try {
      if (!readOnly) await file.listOnce();
    } catch (e) {
      await this.closed(file, false);
      throw e;
    }
    return new ObjectPartStore(file, `${this.label} ${name}`, readOnly, (f, writable) => this.closed(f, writable));
  }

  /** The shared state of `name` (opened once while any view of it is open). */
  private async fileOf(name: string, create: boolean): Promise<PartFile> {
    for (;;) {
      const open = this.files.get(name);
      if (open) return open;
      const pending = this.opening.get(name);
      if (pending) {
        await pending.catch(() => {});
        continue;
      }
      const load = this.load(name, create);
      this.opening.set(name, load);
      try {
        const file = await load;
        this.files.set(name, file);
        return file;
      } finally {
        this.opening.delete(name);
      }
    }
  }

  private async load(name: string, create: boolean): Promise<PartFile> {
    const rec = await this.readRecord(name);
    if (rec) return new PartFile(this, name, rec.partSize, rec.size);
    if (!create) throw new StrataError('not-found', `No store named "${name}" in ${this.label}.`);
    if (this.readOnly) throw new StrataError('read-only', `Cannot create "${name}": ${this.label} is open read-only.`);
    // parts a crashed delete left behind must not show through the new store
    const left = await this.listParts(name);
    if (left.size > 0) await this.deleteKeys([...left].map((i) => this.partKey(name, i)));
    this.checkWriter();
    const wrote = await this.slot(() => this.objects.put(`${NAMES}${name}`, recordBytes(0, this.partSize), { ifAbsent: true }));
    if (!wrote) return this.load(name, false); // created meanwhile by another client
    return new PartFile(this, name, this.partSize, 0);
  }

  private async readRecord(name: string): Promise<{ size: number; partSize: number } | null> {
    const bytes = await this.slot(() => this.objects.get(`${NAMES}${name}`, { offset: 0, length: MAX_RECORD_BYTES + 1 }));
    if (bytes === null) return null;
    const where = `"${name}" in ${this.label}`;
    if (bytes.length > MAX_RECORD_BYTES) throw corruptRecord(where, 'too long');
    let rec: unknown;
    try {
      rec = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch {
      throw corruptRecord(where, 'not JSON');
    }
    const r = rec as { format?: unknown; size?: unknown; partSize?: unknown };
    if (typeof rec !== 'object' || rec === null || r.format !== FORMAT) throw corruptRecord(where, `not ${FORMAT}`);
    if (typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0) throw corruptRecord(where, 'bad size');
    if (typeof r.partSize !== 'number' || !isPartSize(r.partSize)) throw corruptRecord(where, 'bad part size');
    return { size: r.size, partSize: r.partSize };
  }

  /** A view closed: the last one of a writable file uploads what is left, then the file leaves memory. */
  private async closed(file: PartFile, writable: boolean): Promise<void> {
    file.refs--;
    try {
      if (writable && !this.readOnly && file.hasChanges()) await file.flush();
    } finally {
      if (file.refs === 0 && this.files.get(file.name) === file && !file.hasChanges()) this.files.delete(file.name);
    }
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    if (this.files.has(name)) return true;
    return (await this.slot(() => this.objects.head(`${NAMES}${name}`))) !== null;
  }

  async list(): Promise<string[]> {
    const names = new Set<string>();
    for await (const o of this.objects.list(NAMES)) {
      const n = o.key.slice(NAMES.length);
      if (NAME_PATTERN.test(n)) names.add(n);
    }
    return [...names].sort();
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    if (this.readOnly) throw new StrataError('read-only', `Cannot delete "${name}": ${this.label} is open read-only.`);
    const open = this.files.get(name);
    if (open) {
      open.detached = true;
      this.files.delete(name);
    }
    this.checkWriter();
    await this.slot(() => this.objects.delete([`${NAMES}${name}`]));
    const parts = await this.listParts(name);
    if (parts.size > 0) await this.deleteKeys([...parts].map((i) => this.partKey(name, i)));
  }

  /** Creations and deletions are durable once their put or delete returned. */
  async sync(): Promise<void> {}

  /**
   * The writer lease `volume/lock`: put only where absent; a lease whose time has passed (its
   * holder crashed) is taken over. Renewed every third of its time while held. Taking over an
   * expired lease is not atomic against a second taker (object stores offer no conditional
   * delete); the window is one delete and one put.
   */
  async lock(): Promise<NamespaceLock> {
    if (this.readOnly) throw new StrataError('read-only', `Cannot lock ${this.label} for writing: the namespace is read-only.`);
    const owner = randomHex();
    let expires = 0;
    const body = () => {
      expires = this.now() + this.lockTtlMs;
      return new TextEncoder().encode(JSON.stringify({ owner, expires }));
    };
    for (let attempt = 0; ; attempt++) {
      if (await this.slot(() => this.objects.put(LOCK, body(), { ifAbsent: true }))) break;
      const held = await this.slot(() => this.objects.get(LOCK, { offset: 0, length: MAX_RECORD_BYTES }));
      if (held === null && attempt < 3) continue; // released meanwhile
      // a lease being written or damaged counts as live for one lease time from its last change
      const modified = held === null ? undefined : (await this.slot(() => this.objects.head(LOCK)))?.modified;
      const expires = (held === null ? null : leaseExpiry(held)) ?? (modified === undefined ? null : modified + this.lockTtlMs);
      if (attempt > 0 || expires === null || expires > this.now()) {
        const left = expires === null ? '' : `, which expires in ${Math.max(1, Math.ceil((expires - this.now()) / 1000))} s unless renewed (a crashed writer's lease lapses then)`;
        throw new StrataError('locked', `${this.label} holds the writer lease of another process${left}.`);
      }
      await this.slot(() => this.objects.delete([LOCK]));
    }
    // Held until a sixth of its time before it lapses; each renewal that lands moves that on.
    const margin = Math.floor(this.lockTtlMs / 6);
    const lease = new ObjectLease(this, owner, () => {
      const b = body();
      return { bytes: b, validUntil: expires - margin };
    }, Math.max(10, Math.floor(this.lockTtlMs / 3)), expires - margin, () => {
      if (this.lease === lease) this.lease = undefined;
    });
    this.lease = lease;
    return lease;
  }
}

/**
 * A held writer lease: renewed every third of its time. `validUntil` is how long the last renewal
 * that landed keeps it ours (less a margin); past it, the namespace writes nothing more
 * (ObjectNamespace.checkWriter), since another process may have taken the lease over.
 */
class ObjectLease implements NamespaceLock {
  private readonly timer: ReturnType<typeof setInterval>;
  private released = false;

  constructor(
    private readonly ns: ObjectNamespace,
    private readonly owner: string,
    renewal: () => { bytes: Uint8Array; validUntil: number },
    every: number,
    public validUntil: number,
    private readonly onRelease: () => void,
  ) {
    this.timer = setInterval(() => {
      if (this.released) return;
      const r = renewal();
      void ns.objects.put(LOCK, r.bytes).then(
        () => {
          if (!this.released) this.validUntil = Math.max(this.validUntil, r.validUntil);
        },
        () => {},
      );
    }, every);
    (this.timer as { unref?: () => void }).unref?.();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.onRelease();
    clearInterval(this.timer);
    // remove it only while it is still ours (best effort: a lease lost to a takeover stays)
    const held = await this.ns.objects.get(LOCK, { offset: 0, length: MAX_RECORD_BYTES }).catch(() => null);
    if (held !== null && leaseOwner(held) === this.owner) await this.ns.objects.delete([LOCK]).catch(() => {});
  }
}

function isPartSize(p: number): boolean {
  return Number.isSafeInteger(p) && p >= MIN_PART && p <= MAX_PART && (p & (p - 1)) === 0;
}

function recordBytes(size: number, partSize: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ format: FORMAT, size, partSize }));
}

function parseLease(bytes: Uint8Array): { owner?: unknown; expires?: unknown } | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return typeof v === 'object' && v !== null ? (v as { owner?: unknown; expires?: unknown }) : null;
  } catch {
    return null;
  }
}

function leaseExpiry(bytes: Uint8Array): number | null {
  const e = parseLease(bytes)?.expires;
  return typeof e === 'number' && Number.isFinite(e) ? e : null;
}

function leaseOwner(bytes: Uint8Array): unknown {
  return parseLease(bytes)?.owner;
}

function randomHex(): string {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
