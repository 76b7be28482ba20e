import { describe, expect, it } from 'vitest';
import { FaultObjectStore } from '../../../src/transfer/fault-objects.js';
import { gc } from '../../../src/transfer/gc.js';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { publish } from '../../../src/transfer/publish.js';
import { openPublishedVersion } from '../../../src/transfer/published-version.js';
import { listVersions } from '../../../src/transfer/versions.js';
import { changeBlocks, expectCode, KiB, makeVolume, MiB, sameBytes } from './fixtures.js';

const bs = 64 * KiB;
const at = (n: number) => new Date(Date.UTC(2026, 0, 1, 0, n));

/** Three versions of `disk` (the oldest tagged `first`) and one of `other`. */
async function history() {
  const objects = new MemoryObjectStore();
  const { vol, model } = await makeVolume(3 * MiB, bs);
  const models: Uint8Array[] = [];
  const ids: string[] = [];
  for (let k = 0; k < 3; k++) {
    if (k > 0) await changeBlocks(vol, model, bs, 6, 10 + k);
    const r = await publish(objects, vol, { image: 'disk', created: at(k), packBytes: 128 * KiB, ...(k === 0 ? { tag: 'first' } : {}) });
    ids.push(r.contentId);
    models.push(model.slice());
  }
  await publish(objects, vol, { image: 'disk', created: at(3) }); // same content as the last: latest
  const o = await makeVolume(1 * MiB, bs, { seed: 77 });
  const other = await publish(objects, o.vol, { image: 'other', created: at(4) });
  await vol.close();
  await o.vol.close();
  return { objects, models, ids, other: { id: other.contentId, model: o.model } };
}

async function readsAs(objects: MemoryObjectStore, id: string, model: Uint8Array): Promise<void> {
  const v = await openPublishedVersion(objects, { contentId: id });
  expect(sameBytes(await v.read(0, model.length), model)).toBe(true);
}

describe('versions and gc', () => {
  it('lists versions newest first with their tags', async () => {
    const { objects, ids, other } = await history();
    const l = await listVersions(objects);
    expect(l.versions.map((v) => [v.image, v.contentId, v.tags])).toEqual([
      ['disk', ids[2], ['latest']],
      ['disk', ids[1], []],
      ['disk', ids[0], ['first']],
      ['other', other.id, ['latest']],
    ]);
    expect(l.damaged).toEqual([]);
  });

  it('--keep 1 keeps the newest and the tagged versions, deletes the rest and what only they used', async () => {
    const { objects, models, ids, other } = await history();
    const before = objects.objects.size;
    const r = await gc(objects, { keep: 1 });
    expect(r.keptVersions).toBe(3);
    expect(r.deletedVersions).toBe(1);
    expect(r.deletedPacks).toBeGreaterThan(0);
    expect(objects.objects.size).toBeLessThan(before);
    await readsAs(objects, ids[0]!, models[0]!);
    await readsAs(objects, ids[2]!, models[2]!);
    await readsAs(objects, other.id, other.model);
    await expectCode(openPublishedVersion(objects, { contentId: ids[1]! }), 'not-found');
    expect((await listVersions(objects)).versions.map((v) => v.contentId)).toEqual([ids[2], ids[0], other.id]);
    // nothing left to delete
    const again = await gc(objects, { keep: 1 });
    expect(again.deletedPacks + again.deletedSegments + again.deletedVersions).toBe(0);
  });

  it('stops before deleting anything when a kept version cannot be read', async () => {
    const { objects, ids } = await history();
    const key = [...objects.objects.keys()].find((k) => k.startsWith('segments/'))!;
    objects.objects.get(key)!.data[40] ^= 1;
    const before = [...objects.objects.keys()];
    await expectCode(gc(objects, { keep: 0 }), ['checksum-mismatch', 'corrupt']);
    expect([...objects.objects.keys()].filter((k) => !k.startsWith('leases/'))).toEqual(before.filter((k) => !k.startsWith('leases/')));
    expect(ids.length).toBe(3);
  });

  it('gc at every put of a publish stops with locked and deletes nothing', async () => {
    const { objects, models, ids } = await history();
    const { vol, model } = await makeVolume(3 * MiB, bs, { seed: 5 });
    let tried = 0;
    const keys = () => [...objects.objects.keys()].filter((k) => !k.startsWith('leases/')).sort();
    const pub = new FaultObjectStore(objects, {
      beforePut: async (key) => {
        if (key.startsWith('leases/') && tried === 0 && !objects.objects.has(key)) return; // the lease itself
        const had = keys();
        await expectCode(gc(objects, { keep: 0 }), 'locked');
        expect(keys()).toEqual(had);
        tried++;
      },
    });
    const r = await publish(pub, vol, { image: 'new', created: at(9), packBytes: 128 * KiB, parallel: 1 });
    expect(tried).toBeGreaterThan(5);
    await gc(objects, { keep: 1 });
    await readsAs(objects, r.contentId, model);
    await readsAs(objects, ids[2]!, models[2]!);
    await vol.close();
  });

  it('a publish that starts during gc waits for it, then publishes a complete version', async () => {
    const { objects, models, ids } = await history();
    const { vol, model } = await makeVolume(3 * MiB, bs);
    await changeBlocks(vol, model, bs, 3, 99);
    let pub: Promise<{ contentId: string }> | undefined;
    let waits = 0;
    let gcDone = false;
    const gcView = new FaultObjectStore(objects, {
      beforeDelete: async (_keys, n) => {
        if (n !== 0) return;
        // a publish starts now and must wait for gc's lease to go
        let waiting!: () => void;
        const waited = new Promise<void>((res) => (waiting = res));
        pub = publish(objects, vol, {
          image: 'disk',
          created: at(10),
          packBytes: 128 * KiB,
          lease: {
            pollMs: 5,
            onWait: () => {
              expect(gcDone).toBe(false);
              waits++;
              waiting();
            },
          },
        });
        await waited;
      },
    });
    await gc(gcView, { keep: 1 });
    gcDone = true;
    const r = await pub!;
    expect(waits).toBeGreaterThan(0);
    await readsAs(objects, r.contentId, model);
    await readsAs(objects, ids[2]!, models[2]!);
    await readsAs(objects, ids[0]!, models[0]!);
    await vol.close();
  });

  it('an expired publish lease (a crashed publish) does not block gc', async () => {
    const { objects } = await history();
    await objects.put('leases/publish-dead', new TextEncoder().encode(JSON.stringify({ kind: 'publish', expires: Date.now() - 1 })));
    await gc(objects, { keep: 1 });
    await objects.put('leases/publish-alive', new TextEncoder().encode(JSON.stringify({ kind: 'publish', expires: Date.now() + 60_000 })));
    await expectCode(gc(objects, { keep: 1 }), 'locked');
  });
});
