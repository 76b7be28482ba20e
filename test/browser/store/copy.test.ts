/**
 * Issue 14, item 3 in the browser: `copyVolume` between IndexedDB and OPFS namespaces (OPFS in a
 * worker, through the same StoreNamespace interface): the base OPFS already holds is re-linked,
 * only the deltas move, and every snapshot and the live view read the same.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { IdbNamespace } from '../../../src/store/idb.js';
import type { StoreNamespace } from '../../../src/store/store.js';
import { copyVolume } from '../../../src/transfer/copy.js';
import { Volume } from '../../../src/volume/volume.js';
import { uniqueName } from './helpers.js';
import { RemoteOpfsNamespace, startOpfsHost, type OpfsHost } from './opfs-remote.js';

const BS = 4096;
const SIZE = 64 * BS;
const fill = (n: number, b: number) => new Uint8Array(n).fill(b);

let host: OpfsHost;
beforeAll(() => {
  host = startOpfsHost();
});
afterAll(() => host.terminate());

async function chain(ns: StoreNamespace, full: boolean): Promise<void> {
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  await v.write(0, fill(16 * BS, 0xa1));
  await v.snapshot('base');
  if (full) {
    await v.write(16 * BS, fill(4 * BS, 0xb1));
    await v.snapshot('s1');
    await v.write(20 * BS, fill(4 * BS, 0xc1));
    await v.snapshot('s2');
    await v.write(24 * BS, fill(4 * BS, 0xd1));
  }
  await v.close();
}

async function views(ns: StoreNamespace): Promise<Record<string, Uint8Array>> {
  const v = await Volume.open(ns, { readOnly: true });
  try {
    const out: Record<string, Uint8Array> = { live: await v.read(0, SIZE) };
    for (const s of v.snapshots()) out[s.name] = await v.openSnapshot(s.name).read(0, SIZE);
    return out;
  } finally {
    await v.close();
  }
}

it('IndexedDB -> OPFS holding the base: the base is re-linked, the deltas copied, every view equal', async () => {
  const dbName = uniqueName('copy-idb');
  const path = `stratadisk-test/${uniqueName('copy-opfs')}`;
  const idb = await IdbNamespace.open(dbName);
  try {
    await chain(idb, true);
    const opfs = await RemoteOpfsNamespace.open(host.api, path, { create: true });
    await chain(opfs, false);
    const r = await copyVolume(idb, opfs);
    expect(r).toMatchObject({ into: 'existing', reused: 1, copied: 3, bytesMoved: 12 * BS, snapshots: ['base', 's1', 's2'] });
    expect(await views(opfs)).toEqual(await views(idb));
  } finally {
    await host.api.destroy(path);
    idb.close();
    await IdbNamespace.destroy(dbName);
  }
});
