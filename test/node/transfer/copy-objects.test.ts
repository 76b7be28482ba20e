/**
 * Issue 14, item 3, with an object store on one side: `copy` from a Node directory into an
 * ObjectNamespace and back, a grown chain re-linking the layers already there, an interrupted
 * copy (Ctrl-C) that leaves nothing and runs again, and a second writer refused by the lease.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { copyVolume } from '../../../src/transfer/copy.js';
import { FaultObjectStore } from '../../../src/transfer/fault-objects.js';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { LOCK, ObjectNamespace } from '../../../src/transfer/object-namespace.js';
import { Volume } from '../../../src/volume/volume.js';
import { tempDir } from '../cli/harness.js';
import { BS, fill, fourLayers, view } from './copy-fixture.js';

const { dir: work, cleanup } = tempDir();
afterAll(cleanup);

describe('copy with an object namespace', () => {
  it('directory -> object store -> directory round-trips; a grown chain re-links what is there and moves only the delta', async () => {
    const src = new NodeDirNamespace(join(work, 'vm'), { create: true });
    await fourLayers(src);
    const o = new MemoryObjectStore();
    const up = await copyVolume(src, new ObjectNamespace(o, { partSize: 8192 }), { snapshot: 's2' });
    expect(up).toMatchObject({ into: 'new', copied: 3, reused: 0 });
    expect((await view(new ObjectNamespace(o, { readOnly: true }))).snapshots).toEqual((await view(src)).snapshots);
    const back = new NodeDirNamespace(join(work, 'back'), { create: true });
    await copyVolume(new ObjectNamespace(o, { readOnly: true }), back, { snapshot: 's2' });
    expect((await view(back)).snapshots).toEqual((await view(src)).snapshots);

    // the source grows: snapshot s3 of its live layer plus 3 more blocks
    const v = await Volume.open(src);
    await v.write(40 * BS, fill(3 * BS, 0xe1));
    await v.snapshot('s3');
    await v.close();
    const counted = new FaultObjectStore(o);
    const again = await copyVolume(src, new ObjectNamespace(counted, { partSize: 8192 }), { snapshot: 's3' });
    expect(again).toMatchObject({ into: 'existing', reused: 3, copied: 1 });
    // s3's layer: the old live layer's 4 blocks and 1 partial block, plus the 3 new ones
    expect(again.bytesMoved).toBe(8 * BS);
    const dataPuts = counted.putLog.filter((k) => k.startsWith('volume/parts/') && k.includes('.data/'));
    expect(dataPuts.length).toBeLessThanOrEqual(Math.ceil((8 * BS) / 8192) + 2);
    expect((await view(new ObjectNamespace(o, { readOnly: true }))).snapshots).toEqual((await view(src)).snapshots);
  });

  it('an interrupted copy (Ctrl-C) leaves no volume, no staging objects and no lease; running it again completes', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const o = new MemoryObjectStore();
    const ac = new AbortController();
    const f = new FaultObjectStore(o, {
      beforePut: (key) => {
        if (key.includes('L000002.data/')) ac.abort();
      },
    });
    const err = await copyVolume(src, new ObjectNamespace(f, { partSize: 4096 }), { signal: ac.signal }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'aborted' });
    expect(await new ObjectNamespace(o).list()).toEqual([]);
    expect([...o.objects.keys()]).toEqual([]);
    const r = await copyVolume(src, new ObjectNamespace(o, { partSize: 4096 }));
    expect(r).toMatchObject({ into: 'new', copied: 4 });
    expect(await view(new ObjectNamespace(o, { readOnly: true }))).toEqual(await view(src));
  });

  it('a copy into an object namespace another writer holds is refused with locked, and changes nothing', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const o = new MemoryObjectStore();
    const other = await new ObjectNamespace(o).lock();
    const err = await copyVolume(src, new ObjectNamespace(o)).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).toMatchObject({ code: 'locked' });
    expect(err!.message).toMatch(/writer lease of another process, which expires in \d+ s/);
    expect([...o.objects.keys()]).toEqual([LOCK]);
    await other.release();
  });
});
