/**
 * One writer per volume across workers and the page: Web Locks decide, the loser gets
 * `locked`, readers keep working, and a terminated writer's lock is released by the browser.
 */
import { describe, expect, it } from 'vitest';
import { IdbNamespace } from '../../../src/store/idb.js';
import { OPFS_HANDLE_MODE } from '../../../src/store/opfs.js';
import { Volume } from '../../../src/volume/volume.js';
import { errorCode } from '../../node/store/conformance.js';
import { uniqueName } from './helpers.js';
import { RemoteOpfsNamespace, startOpfsHost } from './opfs-remote.js';

/** Retries `fn` until it resolves (the browser drops a dead worker's locks asynchronously). */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() - start > timeoutMs) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe('OPFS sync access handle modes (Chromium)', () => {
  it('only readwrite-unsafe lets a writer and readers share a file', async () => {
    const host = startOpfsHost();
    const path = `stratadisk-test/${uniqueName('modes')}`;
    try {
      const r = await host.api.probeModes(path);
      // 'readwrite' is exclusive both ways.
      expect(r['readwrite+readwrite']).toBe('NoModificationAllowedError');
      expect(r['readwrite+read-only']).toBe('NoModificationAllowedError');
      expect(r['read-only+readwrite']).toBe('NoModificationAllowedError');
      // Shared modes share only with their own kind.
      expect(r['read-only+read-only']).toBe('ok');
      expect(r['readwrite-unsafe+readwrite-unsafe']).toBe('ok');
      expect(r['readwrite-unsafe+read-only']).toBe('NoModificationAllowedError');
      expect(r['read-only+readwrite-unsafe']).toBe('NoModificationAllowedError');
      expect(r[`${OPFS_HANDLE_MODE}+${OPFS_HANDLE_MODE}`]).toBe('ok');
    } finally {
      await host.api.destroy(path).catch(() => {});
      host.terminate();
    }
  });
});

describe('OPFS writer lock across workers', () => {
  it('two workers race: exactly one wins, the other gets locked; readers read while the writer writes; terminating the winner frees the lock', async () => {
    const a = startOpfsHost();
    const b = startOpfsHost();
    const path = `stratadisk-test/${uniqueName('race')}`;
    try {
      const results = await Promise.allSettled([a.api.lockPath(path), b.api.lockPath(path)]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(await errorCode(Promise.reject((lost[0] as PromiseRejectedResult).reason))).toBe('locked');
      expect((lost[0] as PromiseRejectedResult).reason.message).toMatch(/open for writing in another tab or worker/);
      const [winner, loser] = results[0]!.status === 'fulfilled' ? [a, b] : [b, a];

      // The winner writes; the loser opens the same file read-only and reads while it does.
      const wNs = await RemoteOpfsNamespace.open(winner.api, path);
      const w = await wNs.open('disk', { create: true });
      await w.write(0, new Uint8Array(65_536).fill(7));
      await w.flush();
      const storeId = await winner.api.open(await winner.api.nsOpen(path), 'disk');
      await winner.api.startWriting(storeId.id, 65_536, 65_536);
      const rNs = await RemoteOpfsNamespace.open(loser.api, path, { readOnly: true });
      expect(await errorCode(rNs.lock())).toBe('read-only');
      const r = await rNs.open('disk', { readOnly: true });
      let reads = 0;
      for (let i = 0; i < 50; i++) {
        const head = await r.read(0, 65_536);
        expect(head.every((x) => x === 7)).toBe(true);
        reads++;
      }
      const writes = await winner.api.stopWriting();
      expect(reads).toBe(50);
      expect(writes).toBeGreaterThan(0);
      expect(await errorCode(r.write(0, new Uint8Array(1)))).toBe('read-only');
      // The reader sees the writer's growth (its size comes from the shared file).
      await r.read(65_536, 65_536);
      expect(r.size).toBe(131_072);

      // Still locked for a second writer in the loser's worker...
      expect(await errorCode(loser.api.lockPath(path))).toBe('locked');
      // ...until the winner's worker dies: the browser releases its Web Lock.
      winner.terminate();
      const lockId = await eventually(() => loser.api.lockPath(path));
      expect(lockId).toBeGreaterThan(0);
      await r.close();
    } finally {
      a.terminate();
      b.terminate();
      const c = startOpfsHost();
      await eventually(() => c.api.destroy(path)).catch(() => {});
      c.terminate();
    }
  });
});

describe('IndexedDB writer lock: page and worker', () => {
  it('page and worker race: one wins; the page reads read-only meanwhile; a terminated worker frees the lock', async () => {
    const dbName = uniqueName('idb-lock');
    const worker = startOpfsHost();
    const ns = await IdbNamespace.open(dbName);
    try {
      const results = await Promise.allSettled([ns.lock(), worker.api.idbLock(dbName)]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(await errorCode(Promise.reject(lost.reason))).toBe('locked');
      if (results[0].status === 'fulfilled') {
        // The page won: release it and let the worker take it, so the crash case below runs.
        await results[0].value.release();
        await worker.api.idbLock(dbName);
      }
      expect(await errorCode(ns.lock())).toBe('locked');
      // IndexedDB works in the worker too, and the page reads the worker's data read-only.
      const data = new Uint8Array(100_000).map((_, i) => i * 7);
      const back = await worker.api.idbRoundTrip(dbName, data);
      expect(back).toEqual(data);
      const ro = await IdbNamespace.open(dbName, { readOnly: true });
      const s = await ro.open('disk');
      expect(await s.read(1, data.length)).toEqual(data);
      await s.close();
      ro.close();
      worker.terminate();
      const lock = await eventually(() => ns.lock());
      await lock.release();
      // Released: it can be taken again at once.
      await (await ns.lock()).release();
    } finally {
      worker.terminate();
      ns.close();
      await IdbNamespace.destroy(dbName);
    }
  });

  it('a closed tab (here: a removed same-origin frame) releases the lock it held', async () => {
    const dbName = uniqueName('idb-frame-lock');
    const ns = await IdbNamespace.open(dbName);
    const frame = document.createElement('iframe');
    try {
      frame.srcdoc = '<!doctype html><p>holder</p>';
      document.body.append(frame);
      await new Promise((r) => frame.addEventListener('load', r, { once: true }));
      const frameLocks = (frame.contentWindow as Window).navigator.locks;
      // The frame holds the namespace's lock forever, as a writer in another tab would.
      await new Promise<void>((granted) => {
        void frameLocks.request(`stratadisk:idb:${dbName}`, () => {
          granted();
          return new Promise(() => {});
        });
      });
      expect(await errorCode(ns.lock())).toBe('locked');
      frame.remove();
      const lock = await eventually(() => ns.lock());
      await lock.release();
    } finally {
      frame.remove();
      ns.close();
      await IdbNamespace.destroy(dbName);
    }
  });

  it('a second writable Volume.open gets locked; a read-only open works meanwhile', async () => {
    const dbName = uniqueName('idb-vol-lock');
    const ns = await IdbNamespace.open(dbName);
    try {
      const v = await Volume.create(ns, { size: 2 ** 20, blockSize: 4096 });
      await v.write(0, new Uint8Array(4096).fill(9));
      await v.flush();
      const other = await IdbNamespace.open(dbName);
      expect(await errorCode(Volume.open(other))).toBe('locked');
      const ro = await Volume.open(await IdbNamespace.open(dbName, { readOnly: true }));
      expect((await ro.read(0, 4096)).every((x) => x === 9)).toBe(true);
      await ro.close();
      await v.close();
      const again = await Volume.open(other);
      await again.close();
      other.close();
    } finally {
      ns.close();
      await IdbNamespace.destroy(dbName);
    }
  });
});
