/// <reference lib="webworker" />
// Runs the browser benchmarks inside a dedicated worker (OPFS sync handles exist only there).
import * as Comlink from 'comlink';
import { benchBrowserStorage } from '../../../src/bench/browser-storage.js';
import { benchKernels } from '../../../src/bench/kernels.js';
import type { BenchResult } from '../../../src/bench/result.js';

async function run(options: { quick: boolean; groups: string[] }): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  if (options.groups.includes('kernels')) out.push(...(await benchKernels({ quick: options.quick })));
  if (options.groups.includes('storage')) {
    const { OpfsNamespace } = await import('../../../src/store/opfs.js');
    const { IdbNamespace } = await import('../../../src/store/idb.js');
    out.push(
      ...(await benchBrowserStorage(
        {
          opfs: (path) => OpfsNamespace.open(path, { create: true }),
          idb: (db) => IdbNamespace.open(db),
          removeOpfs: async (path) => {
            let dir = await navigator.storage.getDirectory();
            const parts = path.split('/');
            const last = parts.pop()!;
            for (const p of parts) dir = await dir.getDirectoryHandle(p);
            await dir.removeEntry(last, { recursive: true });
          },
          removeIdb: (db) =>
            new Promise<void>((resolve) => {
              const r = indexedDB.deleteDatabase(db);
              r.onsuccess = r.onerror = r.onblocked = () => resolve();
            }),
        },
        { quick: options.quick },
      )),
    );
  }
  return out;
}

Comlink.expose({ run });
