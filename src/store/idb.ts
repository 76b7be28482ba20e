import { createStore, type UseStore } from 'idb-keyval';
import { StrataError } from '../errors.js';
import { browserError } from './browser-errors.js';
import { takeWebLock } from './browser-locks.js';
import { BaseStore, checkName, type NamespaceLock, type OpenOptions, type Store, type StoreNamespace } from './store.js';

/**
 * Chunk record size of new IndexedDB stores: 64 KiB. Measured through IdbStore in headless
 * Chromium 156 (test/browser/store/idb-measure.test.ts; MiB/s and ops/s, each call awaited):
 *   chunk    seq 1 MiB write  seq 1 MiB read  random 4 KiB write  random 4 KiB read
 *   16 KiB      118-142            75             1100-1170           2400
 *   64 KiB      167-226           213              700-754             773
 *   256 KiB     260-355           224              400-454             762
 *   1 MiB       167-210           233              111-116             229
 * Small records read badly in bulk; big ones make every small write a read-modify-write of the
 * whole record. 64 KiB is the volume's default block size, so a block write is exactly one
 * whole-record put with no read first, and it keeps ~3/4 of 256 KiB's sequential write speed
 * with nearly twice its random-write rate. `chunkSize` chooses another per namespace; each
 * store records its own, so reopening with a different option is safe.
 */
export const DEFAULT_IDB_CHUNK_SIZE = 64 * 1024;

/** The one object store of a stratadisk database (idb-keyval's createStore makes it). */
const OBJECT_STORE = 'chunks';

/**
 * Keys are arrays `[storeName, index]` in one object store: index -1 is the store's meta record
 * `{ size, chunkSize }`, index i ≥ 0 holds bytes [i·chunkSize, (i+1)·chunkSize) as an
 * ArrayBuffer, possibly shorter than chunkSize (the missing tail reads as zeros). An absent
 * chunk reads as zeros. No chunk holds non-zero bytes at or past `size` (truncate trims), so
 * growing a store never resurrects old bytes. All of a store's keys sort together, meta first.
 */
const META = -1;
type Key = [string, number];
interface Meta {
  size: number;
  chunkSize: number;
}

function isMeta(v: unknown): v is Meta {
  return !!v && typeof v === 'object' && Number.isSafeInteger((v as Meta).size) && Number.isSafeInteger((v as Meta).chunkSize) && (v as Meta).chunkSize > 0;
}

/**
 * Runs `body` in `tx` and resolves with what it set through `done` once the transaction has
 * committed (`complete`), or rejects with the mapped error when it aborts. `body` and the
 * request callbacks it registers are synchronous: nothing in a transaction ever awaits a
 * promise, because IndexedDB commits a transaction as soon as control returns to the event loop
 * with no request pending — awaiting anything else (even an already-resolved promise in some
 * browsers) would let it commit half-done, and the next request would throw
 * TransactionInactiveError. A throw anywhere aborts the whole transaction, so a failed write
 * changes nothing.
 */
type TxBody<T> = (store: IDBObjectStore, ctx: { done(value: T): void; guard<A extends unknown[]>(fn: (...a: A) => void): (...a: A) => void }) => void;

function runTransaction<T>(store: IDBObjectStore, action: string, body: TxBody<T>): Promise<T> {
  const tx = store.transaction;
  return new Promise<T>((resolve, reject) => {
    let result: T;
    let failure: unknown;
    const fail = (e: unknown) => {
      failure ??= e ?? new DOMException('The transaction failed', 'AbortError');
      try {
        tx.abort();
      } catch {
        // already committing or aborted; oncomplete/onabort still reports
      }
    };
    const guard =
      <A extends unknown[]>(fn: (...a: A) => void) =>
      (...a: A) => {
        try {
          fn(...a);
        } catch (e) {
          fail(e);
        }
      };
    tx.oncomplete = () => (failure === undefined ? resolve(result) : reject(browserError(failure, action)));
    // tx.error is the real cause (QuotaExceededError on a full disk); a request's own error is
    // then only "AbortError: the transaction was aborted", so prefer the transaction's.
    tx.onabort = () => reject(browserError(failure ?? tx.error ?? new DOMException('The transaction was aborted', 'AbortError'), action));
    guard(() => body(store, { done: (v) => (result = v), guard }))();
  });
}

/** Options of {@link IdbNamespace.open}. */
export interface IdbNamespaceOptions {
  /** Stores open read-only; creating and deleting names throw `read-only`; no writer lock. */
  readOnly?: boolean;
  /** Chunk record size for stores created through this namespace: a power of two, 4 KiB to 4 MiB. */
  chunkSize?: number;
  /**
   * Wraps the idb-keyval store function: a hook for fault injection and instrumentation (tests
   * throw the browser's own DOMExceptions from it). Default: none.
   */
  wrapStore?: (useStore: UseStore) => UseStore;
}

/**
 * A Store of fixed-size chunk records in an IndexedDB object store (see the key layout above).
 * Every call is one transaction: a write of many chunks (including the read-modify-write of
 * partial chunks at its ends) and the size update commit together or not at all.
 * `flush` waits for every earlier transaction and then commits a `durability: 'strict'` one,
 * which makes the browser write its log to disk (covering all earlier relaxed commits).
 *
 * Durability: reads, writes and truncates use the browser default, which Chromium treats as
 * 'relaxed' (committed to the OS, not synced): a crash of the machine may lose the last
 * commits, which is what the Store contract allows for writes not yet flushed. Only flush
 * pays for a sync. Measured here, 64 KiB one-put commits run at ~1,550-1,820/s whether relaxed,
 * default or strict (this VM acknowledges syncs early); on a real disk strict means an fsync
 * per commit, which is why it is kept to the one barrier that needs it.
 */
export class IdbStore extends BaseStore {
  readonly resizable = true;
  readonly name: string;
  readonly chunkSize: number;
  private currentSize: number;
  private readonly useStore: UseStore;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(useStore: UseStore, name: string, meta: Meta, options: { readOnly?: boolean; label?: string } = {}) {
    super(options.label ?? `idb:${name}`, options.readOnly ?? false);
    this.useStore = useStore;
    this.name = name;
    this.chunkSize = meta.chunkSize;
    this.currentSize = meta.size;
  }

  /**
   * The size as of this store's last committed call. A read-only store sees the size at open:
   * IndexedDB cannot be asked synchronously, so growth by a writer in another tab shows after
   * reopening (Volume readers reopen per snapshot/manifest generation anyway).
   */
  get size(): number {
    return this.currentSize;
  }

  private key(index: number): Key {
    return [this.name, index];
  }

  /** Runs a transaction and tracks it until it settles, so flush/close can wait for it. */
  private tx<T>(mode: IDBTransactionMode, action: string, body: TxBody<T>): Promise<T> {
    const p = this.useStore(mode, (store) => runTransaction(store, action, body)).catch((e: unknown) => {
      throw browserError(e, action);
    });
    this.pending.add(p);
    const forget = () => this.pending.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Reads the meta record inside a transaction; a deleted store aborts it with `not-found`. */
  private withMeta(store: IDBObjectStore, guard: Parameters<TxBody<unknown>>[1]['guard'], then: (meta: Meta) => void): void {
    const req = store.get(this.key(META));
    req.onsuccess = guard(() => {
      if (!isMeta(req.result)) throw new StrataError('not-found', `Store ${this.label} was deleted while it was open.`);
      then(req.result);
    });
  }

  protected async _readInto(offset: number, target: Uint8Array): Promise<void> {
    const cs = this.chunkSize;
    const end = offset + target.length;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    const place = (index: number, value: unknown) => {
      if (!(value instanceof ArrayBuffer)) return; // absent: zeros (target was zeroed)
      const chunkStart = index * cs;
      const lo = Math.max(offset, chunkStart);
      const hi = Math.min(end, chunkStart + value.byteLength);
      if (hi > lo) target.set(new Uint8Array(value, lo - chunkStart, hi - lo), lo - offset);
    };
    target.fill(0);
    await this.tx<void>('readonly', `read ${target.length} bytes at ${offset} from ${this.label}`, (store, { guard }) => {
      if (first === last) {
        const req = store.get(this.key(first));
        req.onsuccess = guard(() => place(first, req.result));
        return;
      }
      // Two requests over one key range (keys, then values) instead of one per chunk; both see
      // the same snapshot because they run in one transaction.
      const range = IDBKeyRange.bound(this.key(first), this.key(last));
      const keys = store.getAllKeys(range);
      const values = store.getAll(range);
      values.onsuccess = guard(() => {
        const ks = keys.result as Key[];
        const vs = values.result;
        for (let i = 0; i < ks.length; i++) place(ks[i]![1], vs[i]);
      });
    });
  }

  protected async _write(offset: number, data: Uint8Array): Promise<void> {
    const cs = this.chunkSize;
    const end = offset + data.length;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    const size = await this.tx<number>('readwrite', `write ${data.length} bytes at ${offset} to ${this.label}`, (store, { done, guard }) => {
      this.withMeta(store, guard, (meta) => {
        for (let i = first; i <= last; i++) {
          const chunkStart = i * cs;
          const lo = Math.max(offset, chunkStart) - chunkStart;
          const hi = Math.min(end, chunkStart + cs) - chunkStart;
          const bytes = data.subarray(chunkStart + lo - offset, chunkStart + hi - offset);
          if (lo === 0 && (hi === cs || chunkStart + hi >= meta.size)) {
            // Whole chunk, or everything of it up to the end of the store: no old bytes to keep.
            // slice(): a fresh exact-size buffer, since cloning a view clones its whole buffer.
            store.put(bytes.slice().buffer, this.key(i));
            continue;
          }
          const req = store.get(this.key(i));
          req.onsuccess = guard(() => {
            const old = req.result instanceof ArrayBuffer ? new Uint8Array(req.result) : new Uint8Array(0);
            const merged = new Uint8Array(Math.max(old.length, hi));
            merged.set(old);
            merged.set(bytes, lo);
            store.put(merged.buffer, this.key(i));
          });
        }
        const size = Math.max(meta.size, end);
        if (size !== meta.size) store.put({ ...meta, size }, this.key(META));
        done(size);
      });
    });
    this.currentSize = size;
  }

  protected async _truncate(size: number): Promise<void> {
    const cs = this.chunkSize;
    const newSize = await this.tx<number>('readwrite', `resize ${this.label} to ${size} bytes`, (store, { done, guard }) => {
      this.withMeta(store, guard, (meta) => {
        if (size < meta.size) {
          // Drop whole chunks past the end, trim the one the end falls in.
          const keep = Math.ceil(size / cs);
          store.delete(IDBKeyRange.bound(this.key(keep), this.key(Infinity)));
          const within = size % cs;
          if (within !== 0) {
            const req = store.get(this.key(keep - 1));
            req.onsuccess = guard(() => {
              if (req.result instanceof ArrayBuffer && req.result.byteLength > within) store.put(req.result.slice(0, within), this.key(keep - 1));
            });
          }
        }
        if (size !== meta.size) store.put({ ...meta, size }, this.key(META));
        done(size);
      });
    });
    this.currentSize = newSize;
  }

  protected async _flush(): Promise<void> {
    // Every transaction started before this flush has committed (or failed) first.
    await Promise.allSettled([...this.pending]);
    // Then one small strict transaction: Chromium syncs its log on a strict commit, and the log
    // is sequential, so this also makes every earlier (relaxed) commit durable. It rewrites the
    // meta record because a transaction without changes may commit without touching the disk.
    await this.useStore('readonly', (store) => {
      const strict = store.transaction.db.transaction(OBJECT_STORE, 'readwrite', { durability: 'strict' });
      return runTransaction<void>(strict.objectStore(OBJECT_STORE), `flush ${this.label}`, (s, { guard }) => {
        const req = s.get(this.key(META));
        req.onsuccess = guard(() => {
          if (isMeta(req.result)) s.put(req.result, this.key(META));
        });
      });
    }).catch((e: unknown) => {
      throw browserError(e, `flush ${this.label}`);
    });
  }

  protected async _close(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }
}

/**
 * A namespace of stores in one IndexedDB database (created on first use), e.g.
 * `await IdbNamespace.open('stratadisk-vm1')`: one volume per database. Works on the page and
 * in workers.
 */
export class IdbNamespace implements StoreNamespace {
  readonly dbName: string;
  readonly readOnly: boolean;
  readonly chunkSize: number;
  private readonly useStore: UseStore;
  get label(): string {
    return `IndexedDB ${this.dbName}`;
  }
  private db: IDBDatabase | undefined;

  private constructor(dbName: string, useStore: UseStore, options: IdbNamespaceOptions) {
    this.dbName = dbName;
    this.readOnly = options.readOnly ?? false;
    this.chunkSize = options.chunkSize ?? DEFAULT_IDB_CHUNK_SIZE;
    this.useStore = useStore;
  }

  /** True where IndexedDB exists (page and workers of current browsers). */
  static isAvailable(): boolean {
    return typeof indexedDB !== 'undefined';
  }

  /** Opens (creating if needed, unless read-only) the database `dbName`. */
  static async open(dbName: string, options: IdbNamespaceOptions = {}): Promise<IdbNamespace> {
    if (typeof dbName !== 'string' || dbName.length === 0) throw new StrataError('invalid-argument', 'Give a non-empty IndexedDB database name.');
    const cs = options.chunkSize ?? DEFAULT_IDB_CHUNK_SIZE;
    if (!Number.isInteger(cs) || cs < 4096 || cs > 4 * 2 ** 20 || (cs & (cs - 1)) !== 0) {
      throw new StrataError('invalid-argument', `IndexedDB chunk size ${cs} is not allowed: use a power of two from 4096 to 4194304 bytes.`);
    }
    if (!IdbNamespace.isAvailable()) throw new StrataError('unsupported', 'This context has no IndexedDB; use a current browser outside private mode, or another store.');
    if (options.readOnly && typeof indexedDB.databases === 'function') {
      // Opening would create an empty database; a read-only opener must not create anything.
      const dbs = await indexedDB.databases();
      if (!dbs.some((d) => d.name === dbName)) throw new StrataError('not-found', `No IndexedDB database "${dbName}"; create the volume first.`);
    }
    let useStore = createStore(dbName, OBJECT_STORE);
    if (options.wrapStore) useStore = options.wrapStore(useStore);
    const ns = new IdbNamespace(dbName, useStore, options);
    try {
      ns.db = await useStore('readonly', (store) => store.transaction.db);
    } catch (e) {
      throw browserError(e, `open the IndexedDB database "${dbName}"`);
    }
    // Another tab deleting or upgrading the database asks us to close; do so, or it blocks forever.
    ns.db.onversionchange = () => ns.db?.close();
    return ns;
  }

  /** Deletes the whole database. Waits up to `timeoutMs` for other connections to close, then throws `locked`. */
  static async destroy(dbName: string, timeoutMs = 5000): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const req = indexedDB.deleteDatabase(dbName);
      let timer: ReturnType<typeof setTimeout> | undefined;
      req.onsuccess = () => {
        clearTimeout(timer);
        resolve();
      };
      req.onerror = () => {
        clearTimeout(timer);
        reject(browserError(req.error, `delete the IndexedDB database "${dbName}"`));
      };
      req.onblocked = () => {
        timer ??= setTimeout(
          () => reject(new StrataError('locked', `The IndexedDB database "${dbName}" is still open in another tab or worker; close the volume there and try again.`)),
          timeoutMs,
        );
      };
    });
  }

  /** Closes this namespace's database connection; stores opened through it stop working. */
  close(): void {
    this.db?.close();
  }

  private nameOf(name: string): string {
    return `idb:${this.dbName}/${name}`;
  }

  private run<T>(mode: IDBTransactionMode, action: string, body: TxBody<T>): Promise<T> {
    return this.useStore(mode, (store) => runTransaction(store, action, body)).catch((e: unknown) => {
      throw browserError(e, action);
    });
  }

  async open(name: string, options: OpenOptions = {}): Promise<Store> {
    checkName(name);
    const create = !!options.create && !this.readOnly;
    const meta = await this.run<Meta | undefined>(create ? 'readwrite' : 'readonly', `open ${this.nameOf(name)}`, (store, { done, guard }) => {
      const req = store.get([name, META]);
      req.onsuccess = guard(() => {
        if (isMeta(req.result)) return done(req.result);
        if (req.result !== undefined) throw new StrataError('corrupt', `The meta record of ${this.nameOf(name)} is not stratadisk's; the database may belong to another application.`);
        if (!create) return done(undefined);
        const fresh: Meta = { size: 0, chunkSize: this.chunkSize };
        store.add(fresh, [name, META]);
        done(fresh);
      });
    });
    if (!meta) {
      if (options.create && this.readOnly) throw new StrataError('read-only', `Cannot create "${name}": the namespace ${this.nameOf('')} is read-only.`);
      throw new StrataError('not-found', `No store named "${name}" in ${this.nameOf('')}; pass { create: true } to create it.`);
    }
    return new IdbStore(this.useStore, name, meta, { readOnly: this.readOnly || !!options.readOnly, label: this.nameOf(name) });
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    return this.run<boolean>('readonly', `look up ${this.nameOf(name)}`, (store, { done, guard }) => {
      const req = store.getKey([name, META]);
      req.onsuccess = guard(() => done(req.result !== undefined));
    });
  }

  /** Store names, sorted by code unit (IndexedDB's own key order). */
  async list(): Promise<string[]> {
    return this.run<string[]>('readonly', `list ${this.nameOf('')}`, (store, { done, guard }) => {
      // A key cursor that visits each store's meta key and then jumps past all its chunks, so
      // listing costs one step per store, not one per chunk.
      const names: string[] = [];
      const req = store.openKeyCursor();
      req.onsuccess = guard(() => {
        const cursor = req.result;
        if (!cursor) return done(names);
        const [name, index] = cursor.key as Key;
        if (index === META) names.push(name);
        cursor.continue([name, Infinity]);
      });
    });
  }

  /** Removes the store (meta and chunks) in one transaction; a missing name is not an error. */
  async delete(name: string): Promise<void> {
    checkName(name);
    if (this.readOnly) throw new StrataError('read-only', `Cannot delete "${name}": the namespace ${this.nameOf('')} is read-only.`);
    await this.run<void>('readwrite', `delete ${this.nameOf(name)}`, (store) => {
      store.delete(IDBKeyRange.bound([name, -Infinity], [name, Infinity]));
    });
  }

  /** A no-op: creating and deleting names are IndexedDB transactions, committed when they resolve. */
  async sync(): Promise<void> {}

  /**
   * The writer lock: the Web Lock `stratadisk:idb:<dbName>`, taken without waiting; released
   * by `release()` or when the tab or worker holding it goes away.
   */
  async lock(): Promise<NamespaceLock> {
    if (this.readOnly) throw new StrataError('read-only', `Cannot lock ${this.nameOf('')} for writing: the namespace is read-only.`);
    return takeWebLock(
      `stratadisk:idb:${this.dbName}`,
      `The volume in IndexedDB database "${this.dbName}" is open for writing in another tab or worker. Close it there (or close the other tab), or open it read-only.`,
    );
  }
}
