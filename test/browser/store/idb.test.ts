import { describe, expect, it } from 'vitest';
import { IdbNamespace, IdbStore } from '../../../src/store/idb.js';
import { errorCode, namespaceConformance, pattern, equalBytes, storeConformance } from '../../node/store/conformance.js';
import { uniqueName } from './helpers.js';

/** A fresh database per case, deleted afterwards. */
async function freshNamespace(options: Parameters<typeof IdbNamespace.open>[1] = {}) {
  const dbName = uniqueName('idb');
  const ns = await IdbNamespace.open(dbName, options);
  return {
    dbName,
    ns,
    cleanup: async () => {
      ns.close();
      await IdbNamespace.destroy(dbName);
    },
  };
}

for (const chunkSize of [65_536, 4096]) {
  storeConformance(`IdbStore (chunk ${chunkSize})`, async () => {
    const { ns, dbName, cleanup } = await freshNamespace({ chunkSize });
    return {
      open: () => ns.open('disk', { create: true }),
      reopen: async () => (await IdbNamespace.open(dbName)).open('disk'),
      openReadOnly: () => ns.open('disk', { readOnly: true }),
      cleanup,
      // Absent chunks read as zeros, so a 5 GiB offset stores one chunk, not 5 GiB.
      largeOffsets: true,
    };
  });
}

namespaceConformance('IdbNamespace', async () => {
  const { ns, dbName, cleanup } = await freshNamespace();
  const others: IdbNamespace[] = [];
  return {
    namespace: ns,
    reopen: async () => {
      const again = await IdbNamespace.open(dbName);
      others.push(again);
      return again;
    },
    readOnly: async () => {
      const ro = await IdbNamespace.open(dbName, { readOnly: true });
      others.push(ro);
      return ro;
    },
    cleanup: async () => {
      for (const o of others) o.close();
      await cleanup();
    },
  };
});

describe('IdbNamespace specifics', () => {
  it('keeps a store\'s chunk size when reopened with another default', async () => {
    const { ns, dbName, cleanup } = await freshNamespace({ chunkSize: 8192 });
    try {
      const s = (await ns.open('disk', { create: true })) as IdbStore;
      expect(s.chunkSize).toBe(8192);
      const data = pattern(50_000, 1);
      await s.write(100, data);
      await s.flush();
      await s.close();
      const other = await IdbNamespace.open(dbName, { chunkSize: 65_536 });
      const again = (await other.open('disk')) as IdbStore;
      expect(again.chunkSize).toBe(8192);
      equalBytes(await again.read(100, data.length), data, 'reopened');
      await again.close();
      other.close();
    } finally {
      await cleanup();
    }
  });

  it('read-only open of a missing database is not-found and creates nothing', async () => {
    const name = uniqueName('idb-missing');
    expect(await errorCode(IdbNamespace.open(name, { readOnly: true }))).toBe('not-found');
    expect((await indexedDB.databases()).some((d) => d.name === name)).toBe(false);
  });

  it('rejects bad chunk sizes', async () => {
    for (const cs of [1000, 0, 3 * 4096, 8 * 2 ** 20]) {
      expect(await errorCode(IdbNamespace.open(uniqueName('x'), { chunkSize: cs }))).toBe('invalid-argument');
    }
  });

  it('a multi-chunk write is one transaction (one readwrite transaction per write)', async () => {
    const { ns, cleanup } = await freshNamespace({ chunkSize: 4096 });
    try {
      const s = await ns.open('disk', { create: true });
      let transactions = 0;
      const orig = IDBDatabase.prototype.transaction;
      IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: Parameters<IDBDatabase['transaction']>) {
        if (args[1] === 'readwrite') transactions++;
        return orig.apply(this, args);
      } as IDBDatabase['transaction'];
      try {
        await s.write(1000, pattern(100_000, 2)); // 26 chunks, partial at both ends
      } finally {
        IDBDatabase.prototype.transaction = orig;
      }
      expect(transactions).toBe(1);
      equalBytes(await s.read(1000, 100_000), pattern(100_000, 2), 'read back');
      await s.close();
    } finally {
      await cleanup();
    }
  });

  it('flush waits for every write started before it', async () => {
    const { ns, cleanup } = await freshNamespace({ chunkSize: 4096 });
    try {
      const s = await ns.open('disk', { create: true });
      const settled: number[] = [];
      const writes = Array.from({ length: 20 }, (_, i) => s.write(i * 10_000, pattern(10_000, i)).then(() => settled.push(i)));
      await s.flush();
      expect(settled).toHaveLength(20);
      await Promise.all(writes);
      expect(s.size).toBe(200_000);
      await s.close();
    } finally {
      await cleanup();
    }
  });

  it('destroy while another connection is open closes it (versionchange) instead of hanging', async () => {
    const { ns, dbName } = await freshNamespace();
    const s = await ns.open('disk', { create: true });
    await s.write(0, new Uint8Array([1]));
    await IdbNamespace.destroy(dbName, 2000);
    expect((await indexedDB.databases()).some((d) => d.name === dbName)).toBe(false);
    expect(await errorCode(s.write(0, new Uint8Array([2])))).toMatch(/closed|locked/);
  });
});

describe('Volume on IndexedDB (on the page)', () => {
  it('write, snapshot, read back, reopen, check', async () => {
    const { volumeSmoke } = await import('./volume-smoke.js');
    const dbName = uniqueName('idb-volume');
    const opened: IdbNamespace[] = [];
    try {
      const report = await volumeSmoke(async () => {
        const ns = await IdbNamespace.open(dbName);
        opened.push(ns);
        return ns;
      });
      expect(report).toEqual({ snapshots: ['s1'], size: 8 * 2 ** 20, checkProblems: 0 });
    } finally {
      for (const ns of opened) ns.close();
      await IdbNamespace.destroy(dbName);
    }
  });
});
