import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, namespaceConformance, storeConformance } from '../../node/store/conformance.js';
import { uniqueName } from './helpers.js';
import { RemoteOpfsNamespace, startOpfsHost, type OpfsHost } from './opfs-remote.js';

let host: OpfsHost;
beforeAll(() => {
  host = startOpfsHost();
});
afterAll(() => host.terminate());

/** A fresh OPFS directory per case, removed afterwards (after its stores are closed). */
async function freshDir() {
  const path = `stratadisk-test/${uniqueName('opfs')}`;
  const ns = await RemoteOpfsNamespace.open(host.api, path, { create: true });
  return { path, ns, cleanup: () => host.api.destroy(path) };
}

storeConformance('OpfsStore (in a worker)', async () => {
  const { ns, path, cleanup } = await freshDir();
  return {
    open: () => ns.open('disk', { create: true }),
    reopen: async () => (await RemoteOpfsNamespace.open(host.api, path)).open('disk'),
    openReadOnly: () => ns.open('disk', { readOnly: true }),
    cleanup,
  };
});

namespaceConformance('OpfsNamespace (in a worker)', async () => {
  const { ns, path, cleanup } = await freshDir();
  return {
    namespace: ns,
    reopen: () => RemoteOpfsNamespace.open(host.api, path),
    readOnly: () => RemoteOpfsNamespace.open(host.api, path, { readOnly: true }),
    cleanup,
  };
});

describe('OpfsNamespace specifics', () => {
  it('open of a missing directory is not-found unless create is given; bad paths are refused', async () => {
    const path = `stratadisk-test/${uniqueName('missing')}`;
    expect(await errorCode(RemoteOpfsNamespace.open(host.api, path))).toBe('not-found');
    expect(await errorCode(RemoteOpfsNamespace.open(host.api, 'a/../b', { create: true }))).toBe('invalid-argument');
  });

  it('on the page, list/exists work but opening a store is unsupported (no sync handles on the page)', async () => {
    const { OpfsNamespace } = await import('../../../src/store/opfs.js');
    const { ns, path, cleanup } = await freshDir();
    try {
      const s = await ns.open('disk', { create: true });
      await s.write(0, new Uint8Array([1, 2, 3]));
      await s.close();
      const local = await OpfsNamespace.open(path);
      expect(await local.list()).toEqual(['disk']);
      expect(await local.exists('disk')).toBe(true);
      expect(await errorCode(local.open('disk'))).toBe('unsupported');
    } finally {
      await cleanup();
    }
  });

  it('deleting a store that is open is refused with locked, and works after close', async () => {
    const { ns, cleanup } = await freshDir();
    try {
      const s = await ns.open('disk', { create: true });
      expect(await errorCode(ns.delete('disk'))).toBe('locked');
      await s.close();
      await ns.delete('disk');
      expect(await ns.exists('disk')).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it('runs a Volume: write, snapshot, read back, reopen (inside the worker)', async () => {
    const path = `stratadisk-test/${uniqueName('volume')}`;
    try {
      const report = await host.api.volumeSmoke(path);
      expect(report).toEqual({ snapshots: ['s1'], size: 8 * 2 ** 20, checkProblems: 0 });
    } finally {
      await host.api.destroy(path);
    }
  });
});
