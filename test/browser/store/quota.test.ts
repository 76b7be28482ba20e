/**
 * Quota: the browser's own "out of space" errors become `quota`, the failed write changes
 * nothing, and the store (and a volume on it) stays whole and reopenable.
 *
 * Real quota: Chrome DevTools Protocol `Storage.overrideQuotaForOrigin` gives the test origin a
 * small quota. IndexedDB enforces it (a real QuotaExceededError when the transaction commits)
 * only when the override is set before the origin's IndexedDB is first used in the browser
 * session, so that case skips itself when Chromium lets the write through. Usage accounting
 * also lags (values are kept as blob files), so many small transactions slip past a quota that
 * one big one hits. OPFS sync access handles in Chromium 156 ignore the override (a 200 MiB
 * write under a 20 MiB override succeeds), and a storage bucket's quota did not stop 20 MiB of
 * IndexedDB writes into an 8 MiB bucket either; so OPFS and the Volume cases use fault
 * injection, which throws the browser's own DOMExceptions at chosen calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cdp } from 'vitest/browser';
import { StrataError } from '../../../src/errors.js';
import { browserError, browserErrorCode } from '../../../src/store/browser-errors.js';
import { requestPersistence, storageEstimate } from '../../../src/store/browser-storage.js';
import { IdbNamespace } from '../../../src/store/idb.js';
import { Volume } from '../../../src/volume/volume.js';
import { equalBytes, errorCode, pattern } from '../../node/store/conformance.js';
import { abortedForQuota, faultyStore, quotaExceeded } from './faults.js';
import { uniqueName } from './helpers.js';
import { RemoteOpfsNamespace, startOpfsHost, type OpfsHost } from './opfs-remote.js';

const MIB = 2 ** 20;

describe('IndexedDB quota for real (CDP quota override)', () => {
  const setQuota = (quotaSize?: number) =>
    cdp().send('Storage.overrideQuotaForOrigin', quotaSize === undefined ? { origin: location.origin } : { origin: location.origin, quotaSize });
  beforeAll(async () => {
    await setQuota(24 * MIB);
  });
  afterAll(() => setQuota());

  it('a write past the quota fails with quota; the store is unchanged and reopenable', async (ctx) => {
    const dbName = uniqueName('idb-quota');
    const ns = await IdbNamespace.open(dbName);
    try {
      const s = await ns.open('disk', { create: true });
      const before = pattern(MIB, 3);
      await s.write(0, before);
      await s.flush();
      const err = await s.write(MIB, new Uint8Array(40 * MIB).fill(1)).catch((e: unknown) => e);
      if (err === undefined) {
        // Seen in Chromium 156: the override is enforced when it is set before the origin's
        // IndexedDB is first used in the browser session, and not after (another test file may
        // have used IndexedDB first). The fault-injection cases below cover the same path.
        await s.close();
        return ctx.skip('Chromium did not enforce the CDP quota override in this session');
      }
      expect((err as StrataError).code).toBe('quota');
      expect(((err as StrataError).cause as DOMException).name).toBe('QuotaExceededError');
      expect(s.size).toBe(MIB);
      equalBytes(await s.read(0, MIB), before, 'unchanged');
      await s.close();
      const again = await (await IdbNamespace.open(dbName)).open('disk');
      expect(again.size).toBe(MIB);
      equalBytes(await again.read(0, MIB), before, 'unchanged after reopen');
      await again.close();
    } finally {
      ns.close();
      await IdbNamespace.destroy(dbName);
    }
  });

});

describe('browser error mapping', () => {
  it('maps DOMException names to codes, keeps the cause and says what to do', () => {
    const cases: [DOMException, string][] = [
      [new DOMException('x', 'QuotaExceededError'), 'quota'],
      [abortedForQuota(0), 'quota'],
      [new DOMException('The transaction was aborted', 'AbortError'), 'aborted'],
      [new DOMException('x', 'NotFoundError'), 'not-found'],
      [new DOMException('Access Handles cannot be created if there is another open Access Handle', 'NoModificationAllowedError'), 'locked'],
      [new DOMException('The file is locked', 'InvalidStateError'), 'locked'],
      [new DOMException('The database connection is closing.', 'InvalidStateError'), 'closed'],
      [new DOMException('x', 'SomethingElse'), 'io'],
    ];
    for (const [e, code] of cases) {
      expect(browserErrorCode(e), e.name).toBe(code);
      const mapped = browserError(e, 'write to disk');
      expect(mapped.code).toBe(code);
      expect(mapped.cause).toBe(e);
      expect(mapped.message).toMatch(/^Could not write to disk/);
    }
    expect(browserError(new DOMException('x', 'QuotaExceededError'), 'write').message).toMatch(/free space.*persistent storage/);
    expect(browserError(new DOMException('x', 'NoModificationAllowedError'), 'open').message).toMatch(/close the volume there.*read-only/);
    const own = new StrataError('locked', 'mine');
    expect(browserError(own, 'x')).toBe(own);
  });
});

describe('storage persistence and estimate', () => {
  it('reports usage and quota and answers a persistence request', async () => {
    const est = await storageEstimate();
    expect(est.quota).toBeGreaterThan(0);
    expect(est.usage).toBeGreaterThanOrEqual(0);
    expect(typeof est.persisted).toBe('boolean');
    expect(typeof (await requestPersistence())).toBe('boolean');
  });
});

describe('IndexedDB quota by fault injection', () => {
  for (const [label, error] of [
    ['QuotaExceededError', quotaExceeded],
    ['AbortError with a quota cause', abortedForQuota],
  ] as const) {
    it(`a ${label} in the middle of a multi-chunk write is quota and rolls the whole write back`, async () => {
      const dbName = uniqueName('idb-fault');
      const faults = faultyStore();
      const ns = await IdbNamespace.open(dbName, { chunkSize: 4096, wrapStore: faults.wrap });
      try {
        const s = await ns.open('disk', { create: true });
        const before = pattern(40_000, 1);
        await s.write(0, before);
        await s.flush();
        // The next write touches 13 chunks and the size record; its 6th put throws.
        faults.failIn(5, error);
        const start = faults.puts();
        const err = await s.write(1000, pattern(50_000, 2)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StrataError);
        expect((err as StrataError).code).toBe('quota');
        expect((err as StrataError).message).toMatch(/storage for this site is full/);
        expect((err as StrataError).cause).toBeInstanceOf(DOMException);
        expect(faults.puts() - start).toBeGreaterThan(5);
        expect(s.size).toBe(40_000);
        equalBytes(await s.read(0, 40_000), before, 'unchanged after the failed write');
        // Reopened from scratch, the store is whole, and writable again.
        const fresh = await IdbNamespace.open(dbName);
        const again = await fresh.open('disk');
        expect(again.size).toBe(40_000);
        equalBytes(await again.read(0, 40_000), before, 'unchanged after reopen');
        await again.write(1000, pattern(50_000, 2));
        expect(again.size).toBe(51_000);
        await again.close();
        await s.close();
        fresh.close();
      } finally {
        ns.close();
        await IdbNamespace.destroy(dbName);
      }
    });
  }
});

describe('a Volume on IndexedDB under quota (fault injection)', () => {
  it('the write fails with quota; the volume reopens clean and its snapshot is whole', async () => {
    const dbName = uniqueName('idb-quota-volume');
    const faults = faultyStore();
    const failing = await IdbNamespace.open(dbName, { wrapStore: faults.wrap });
    try {
      const v = await Volume.create(failing, { size: 64 * MIB, blockSize: 64 * 1024 });
      const base = pattern(2 * MIB, 4);
      await v.write(0, base);
      await v.snapshot('before');
      await v.write(0, pattern(MIB, 5));
      faults.failIn(3); // part-way through the next write
      expect(await errorCode(v.write(MIB, pattern(4 * MIB, 6)))).toBe('quota');
      await v.close().catch(() => {});
      const ns = await IdbNamespace.open(dbName);
      const again = await Volume.open(ns);
      try {
        equalBytes(await again.openSnapshot('before').read(0, base.length), base, 'snapshot after quota');
        expect((await again.check()).problems).toEqual([]);
        // Still usable: the same write succeeds once there is space.
        await again.write(MIB, pattern(4 * MIB, 6));
        equalBytes(await again.read(MIB, 4 * MIB), pattern(4 * MIB, 6), 'write after quota');
      } finally {
        await again.close();
        ns.close();
      }
    } finally {
      failing.close();
      await IdbNamespace.destroy(dbName);
    }
  });
});

describe('OPFS quota by fault injection (in the worker)', () => {
  let host: OpfsHost;
  beforeAll(() => {
    host = startOpfsHost();
  });
  afterAll(() => host.terminate());

  it('a QuotaExceededError from the sync access handle is quota; size and bytes are unchanged; reopenable', async () => {
    const path = `stratadisk-test/${uniqueName('opfs-quota')}`;
    try {
      const ns = await RemoteOpfsNamespace.open(host.api, path, { create: true, faults: { writeAt: [1], truncateAt: [0] } });
      const s = await ns.open('disk', { create: true });
      const before = pattern(100_000, 6);
      await s.write(0, before);
      await s.flush();
      expect(await errorCode(s.write(50_000, new Uint8Array(MIB)))).toBe('quota');
      expect(s.size).toBe(100_000);
      expect(await errorCode(s.truncate(10 * MIB))).toBe('quota');
      expect(s.size).toBe(100_000);
      equalBytes(await s.read(0, 100_000), before, 'unchanged');
      await s.close();
      const again = await (await RemoteOpfsNamespace.open(host.api, path)).open('disk');
      equalBytes(await again.read(0, 100_000), before, 'unchanged after reopen');
      await again.close();
    } finally {
      await host.api.destroy(path);
    }
  });
});
