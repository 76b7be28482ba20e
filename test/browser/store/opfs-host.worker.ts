/**
 * A dedicated module worker that owns real OPFS stores (sync access handles exist only in
 * dedicated workers) and exposes them to the test page through comlink. Every store reply
 * carries the store's size so the page-side adapter can answer `size` synchronously.
 */
import { expose, transfer } from 'comlink';
import { StrataError } from '../../../src/errors.js';
import { IdbNamespace } from '../../../src/store/idb.js';
import { OpfsNamespace, type OpfsHandleMode } from '../../../src/store/opfs.js';
import type { NamespaceLock, Store } from '../../../src/store/store.js';
import { registerErrorTransfer } from '../../../src/worker/errors.js';
import { volumeSmoke } from './volume-smoke.js';

registerErrorTransfer();

/** Which handle calls of a namespace throw which browser error (counted per namespace, per method). */
export interface HandleFaultPlan {
  /** 0-based numbers of `write` calls (over all handles of the namespace) that throw. */
  writeAt?: number[];
  /** 0-based numbers of `truncate` calls that throw. */
  truncateAt?: number[];
  /** 0-based numbers of `flush` calls that throw. */
  flushAt?: number[];
  /** The DOMException name to throw: 'QuotaExceededError' (default), 'InvalidStateError', ... */
  name?: string;
}

export interface NamespaceOpenOptions {
  create?: boolean;
  readOnly?: boolean;
  faults?: HandleFaultPlan;
}

export interface StoreInfo {
  id: number;
  size: number;
  readOnly: boolean;
  resizable: boolean;
}

let nextId = 1;
const namespaces = new Map<number, OpfsNamespace>();
const stores = new Map<number, Store>();
const locks = new Map<number, NamespaceLock>();

/** The browser's own error, thrown from a real handle method at the planned call. */
function faultyHandle(h: FileSystemSyncAccessHandle, plan: HandleFaultPlan, counters: Record<string, number>): FileSystemSyncAccessHandle {
  const at = { write: plan.writeAt ?? [], truncate: plan.truncateAt ?? [], flush: plan.flushAt ?? [] };
  const name = plan.name ?? 'QuotaExceededError';
  return new Proxy(h, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (prop === 'write' || prop === 'truncate' || prop === 'flush') {
        return (...args: unknown[]) => {
          const n = counters[prop] = (counters[prop] ?? -1) + 1;
          if (at[prop].includes(n)) throw new DOMException(`Injected ${name} at ${prop} #${n}`, name);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
}

function ns(id: number): OpfsNamespace {
  const n = namespaces.get(id);
  if (!n) throw new StrataError('invalid-argument', `no namespace ${id} in the worker`);
  return n;
}

function store(id: number): Store {
  const s = stores.get(id);
  if (!s) throw new StrataError('invalid-argument', `no store ${id} in the worker`);
  return s;
}

const api = {
  async nsOpen(path: string, options: NamespaceOpenOptions = {}): Promise<number> {
    const counters: Record<string, number> = {};
    const n = await OpfsNamespace.open(path, {
      create: options.create,
      readOnly: options.readOnly,
      ...(options.faults ? { wrapHandle: (h: FileSystemSyncAccessHandle) => faultyHandle(h, options.faults!, counters) } : {}),
    });
    const id = nextId++;
    namespaces.set(id, n);
    return id;
  },
  async nsReadOnly(id: number): Promise<boolean> {
    return ns(id).readOnly;
  },
  async open(nsId: number, name: string, options?: { create?: boolean; readOnly?: boolean }): Promise<StoreInfo> {
    const s = await ns(nsId).open(name, options);
    const id = nextId++;
    stores.set(id, s);
    return { id, size: s.size, readOnly: s.readOnly, resizable: s.resizable };
  },
  exists: (nsId: number, name: string) => ns(nsId).exists(name),
  list: (nsId: number) => ns(nsId).list(),
  delete: (nsId: number, name: string) => ns(nsId).delete(name),
  sync: (nsId: number) => ns(nsId).sync(),
  async lock(nsId: number): Promise<number> {
    const l = await ns(nsId).lock();
    const id = nextId++;
    locks.set(id, l);
    return id;
  },
  async release(lockId: number): Promise<void> {
    await locks.get(lockId)?.release();
    locks.delete(lockId);
  },
  /** Take the writer lock of `path` directly (lock race tests). */
  async lockPath(path: string): Promise<number> {
    return api.lock(await api.nsOpen(path, { create: true }));
  },
  async read(id: number, offset: number, length: number): Promise<{ bytes: Uint8Array; size: number }> {
    const s = store(id);
    const bytes = await s.read(offset, length);
    return transfer({ bytes, size: s.size }, [bytes.buffer]);
  },
  async write(id: number, offset: number, data: Uint8Array): Promise<number> {
    const s = store(id);
    await s.write(offset, data);
    return s.size;
  },
  async flush(id: number): Promise<number> {
    const s = store(id);
    await s.flush();
    return s.size;
  },
  async truncate(id: number, size: number): Promise<number> {
    const s = store(id);
    await s.truncate(size);
    return s.size;
  },
  async size(id: number): Promise<number> {
    return store(id).size;
  },
  async close(id: number): Promise<void> {
    // The closed store stays in the map so later calls get its own `closed` error.
    await store(id).close();
  },
  destroy: (path: string) => OpfsNamespace.destroy(path),
  /**
   * Which pairs of sync access handle modes can be open on one file at once. Returns, for each
   * [first, second] pair, 'ok' or the DOMException name the second open threw.
   */
  async probeModes(path: string): Promise<Record<string, string>> {
    const dir = (await OpfsNamespace.open(path, { create: true })).directory;
    const file = await dir.getFileHandle('probe', { create: true });
    const modes: OpfsHandleMode[] = ['readwrite', 'read-only', 'readwrite-unsafe'];
    const out: Record<string, string> = {};
    for (const a of modes) {
      for (const b of modes) {
        const first = await file.createSyncAccessHandle({ mode: a });
        try {
          const second = await file.createSyncAccessHandle({ mode: b });
          second.close();
          out[`${a}+${b}`] = 'ok';
        } catch (e) {
          out[`${a}+${b}`] = (e as DOMException).name;
        } finally {
          first.close();
        }
      }
    }
    return out;
  },
  /** Take the writer lock of an IndexedDB namespace in this worker. */
  async idbLock(dbName: string): Promise<number> {
    const l = await (await IdbNamespace.open(dbName)).lock();
    const id = nextId++;
    locks.set(id, l);
    return id;
  },
  /** IndexedDB from a worker: write, flush, read back; returns what was read. */
  async idbRoundTrip(dbName: string, data: Uint8Array): Promise<Uint8Array> {
    const n = await IdbNamespace.open(dbName);
    try {
      const s = await n.open('disk', { create: true });
      await s.write(1, data);
      await s.flush();
      const back = await s.read(1, data.length);
      await s.close();
      return back;
    } finally {
      n.close();
    }
  },
  /** Volume smoke test on OPFS, run entirely in this worker. */
  async volumeSmoke(path: string) {
    return volumeSmoke(() => OpfsNamespace.open(path, { create: true }));
  },
  /**
   * Keeps writing `chunk`-byte patterns at `offset` in a loop (until `stopWriting`), flushing
   * each time: lets a reader in another worker read while this one writes.
   */
  async startWriting(id: number, offset: number, chunk: number): Promise<void> {
    const s = store(id);
    writing = true;
    let round = 0;
    const loop = async () => {
      while (writing) {
        const data = new Uint8Array(chunk).fill(round++ & 0xff);
        await s.write(offset, data);
        await s.flush();
        writes++;
        await new Promise((r) => setTimeout(r, 0));
      }
    };
    void loop();
  },
  async stopWriting(): Promise<number> {
    writing = false;
    return writes;
  },
};

let writing = false;
let writes = 0;

export type OpfsHostApi = typeof api;

expose(api);
