/**
 * Measurements behind the IndexedDB chunk size and durability choices (src/store/idb.ts).
 * Prints JSON; asserts nothing about speed. About 10 s, so it runs only when asked:
 *   VITE_STRATADISK_MEASURE=1 npx vitest run --project browser test/browser/store/idb-measure.test.ts
 *
 * Headless Chromium 156 on the 2-core VM (one run; MiB/s, ops/s, each op awaited):
 *   chunk    seq 1 MiB write  seq 1 MiB read  random 4 KiB write  random 4 KiB read
 *   16 KiB        118              75              1170                2396
 *   64 KiB        167             213               700                 773
 *   256 KiB       260             224               401                 762
 *   1 MiB         167             233               111                 229
 *   commits/s of one 64 KiB put: relaxed 1632, default 1534, strict 1563 (this VM's disk
 *   acknowledges syncs early, so strict costs nothing here; on real disks it is an fsync).
 */
import { expect, it } from 'vitest';
import { IdbNamespace } from '../../../src/store/idb.js';
import { uniqueName } from './helpers.js';

const MIB = 2 ** 20;

async function time(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const env = (import.meta as unknown as { env?: Record<string, string | undefined> }).env ?? {};

it.runIf(env.VITE_STRATADISK_MEASURE === '1')('chunk sizes: sequential 1 MiB and random 4 KiB through IdbStore; strict vs relaxed commits', async () => {
  const results: Record<string, unknown>[] = [];
  for (const chunkSize of [16_384, 65_536, 262_144, 1_048_576]) {
    const dbName = uniqueName('idb-measure');
    const ns = await IdbNamespace.open(dbName, { chunkSize });
    try {
      const s = await ns.open('disk', { create: true });
      const total = 16 * MIB;
      const buf = new Uint8Array(MIB).map((_, i) => i);
      const seqWrite = await time(async () => {
        for (let off = 0; off < total; off += MIB) await s.write(off, buf);
        await s.flush();
      });
      const seqRead = await time(async () => {
        for (let off = 0; off < total; off += MIB) await s.read(off, MIB);
      });
      const ops = 300;
      let x = 12345;
      const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) % (total / 4096)) * 4096;
      const small = new Uint8Array(4096).fill(7);
      const randWrite = await time(async () => {
        for (let i = 0; i < ops; i++) await s.write(rnd(), small);
      });
      const randRead = await time(async () => {
        for (let i = 0; i < ops; i++) await s.read(rnd(), 4096);
      });
      results.push({
        chunkKiB: chunkSize / 1024,
        seqWriteMiBs: +(16 / (seqWrite / 1000)).toFixed(1),
        seqReadMiBs: +(16 / (seqRead / 1000)).toFixed(1),
        rand4kWriteOps: Math.round(ops / (randWrite / 1000)),
        rand4kReadOps: Math.round(ops / (randRead / 1000)),
      });
      await s.close();
    } finally {
      ns.close();
      await IdbNamespace.destroy(dbName);
    }
  }
  // Commit cost by durability, on raw IndexedDB: 64 KiB puts, one transaction each.
  const durability: Record<string, number> = {};
  for (const d of ['relaxed', 'default', 'strict'] as const) {
    const name = uniqueName('idb-durability');
    const db = await new Promise<IDBDatabase>((res, rej) => {
      const r = indexedDB.open(name);
      r.onupgradeneeded = () => r.result.createObjectStore('s');
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const n = 100;
    const ms = await time(async () => {
      for (let i = 0; i < n; i++) {
        const tx = db.transaction('s', 'readwrite', { durability: d });
        tx.objectStore('s').put(new Uint8Array(65_536).fill(i).buffer, i);
        await new Promise((res, rej) => {
          tx.oncomplete = res;
          tx.onabort = () => rej(tx.error);
        });
      }
    });
    durability[`${d}CommitsPerSec`] = Math.round(n / (ms / 1000));
    db.close();
    await IdbNamespace.destroy(name);
  }
  console.log(JSON.stringify({ idbChunkSizes: results, durability }, null, 1));
  expect(results).toHaveLength(4);
});
