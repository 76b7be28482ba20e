/**
 * Backend descriptors: how a {@link BackendSpec} becomes a StoreNamespace. The neutral set here
 * (memory, OPFS, IndexedDB) is safe for browser bundles; Node adds `node-dir` from
 * ./backends-node.ts, which only the Node entry imports.
 */
import { StrataError } from '../errors.js';
import { MemoryNamespace, type MemoryBacking } from '../store/memory.js';
import type { StoreNamespace } from '../store/store.js';
import type { BackendName } from './protocol.js';

export interface Backend {
  /** Can this backend work in the current realm? */
  isAvailable(): boolean;
  /** The namespace at `path`. `create: false` on a missing one throws `not-found` where the backend can tell. */
  open(path: string, options: { create: boolean; readOnly: boolean }): Promise<StoreNamespace>;
  /** Remove what is left of an emptied namespace (the directory, database or map entry). */
  remove?(path: string): Promise<void>;
  /** Names of volumes under `parent` (backends where that is cheap). */
  list?(parent?: string): Promise<string[]>;
}

export type BackendTable = Partial<Record<BackendName, Backend>>;

/** Memory namespaces live in the worker by path until the worker ends. */
export function memoryBackend(): Backend {
  const spaces = new Map<string, Map<string, MemoryBacking>>();
  return {
    isAvailable: () => true,
    async open(path, { create, readOnly }) {
      let files = spaces.get(path);
      if (!files) {
        if (!create) throw new StrataError('not-found', `No memory volume at "${path}" in this worker; create it first (memory volumes last as long as the worker).`);
        files = new Map();
        spaces.set(path, files);
      }
      return new MemoryNamespace({ files, readOnly });
    },
    async remove(path) {
      spaces.delete(path);
    },
    async list(parent) {
      const prefix = parent === undefined || parent === '' ? '' : parent.endsWith('/') ? parent : `${parent}/`;
      return [...spaces.keys()].filter((p) => p.startsWith(prefix)).sort();
    },
  };
}

/**
 * OPFS directories; sync access handles exist only in dedicated workers. Imported on first use,
 * so a worker that never touches OPFS never loads it.
 */
export function opfsBackend(): Backend {
  return {
    isAvailable: () => typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function',
    async open(path, { create, readOnly }) {
      const { OpfsNamespace } = await import('../store/opfs.js');
      return OpfsNamespace.open(path, { create, readOnly });
    },
    async remove(path) {
      const { OpfsNamespace } = await import('../store/opfs.js');
      await OpfsNamespace.destroy(path);
    },
  };
}

/** IndexedDB databases (chunk records), one database per volume. */
export function idbBackend(): Backend {
  return {
    isAvailable: () => typeof indexedDB !== 'undefined',
    async open(path, { create, readOnly }) {
      // Opening a database creates it: look first, so opening a missing volume leaves nothing behind.
      if (!create && typeof indexedDB.databases === 'function') {
        const dbs = await indexedDB.databases();
        if (!dbs.some((d) => d.name === path)) throw new StrataError('not-found', `No IndexedDB volume "${path}"; create it first.`);
      }
      const { IdbNamespace } = await import('../store/idb.js');
      return IdbNamespace.open(path, { readOnly });
    },
    async remove(path) {
      const { IdbNamespace } = await import('../store/idb.js');
      await IdbNamespace.destroy(path);
    },
    async list(parent) {
      if (typeof indexedDB.databases !== 'function') throw new StrataError('unsupported', 'This browser cannot list IndexedDB databases.');
      const prefix = parent ?? '';
      return (await indexedDB.databases()).map((d) => d.name ?? '').filter((n) => n !== '' && n.startsWith(prefix)).sort();
    },
  };
}

/**
 * A store server (`stratadisk serve-store`) over HTTP: the path is the namespace URL with its
 * token in the fragment, e.g. `http://127.0.0.1:7000/vol1#token=T`. A mirror target, or a volume.
 */
export function remoteBackend(): Backend {
  return {
    isAvailable: () => typeof fetch === 'function',
    async open(path, { readOnly }) {
      const { RemoteNamespace } = await import('../store/remote.js');
      return new RemoteNamespace(path, { readOnly });
    },
  };
}

export function browserBackends(): BackendTable {
  return { memory: memoryBackend(), opfs: opfsBackend(), idb: idbBackend(), remote: remoteBackend() };
}
