/**
 * Issue 14, item 3, into an object store: a copy into an ObjectNamespace (part objects, size
 * records, a writer lease) crashed at every object put (fault-injecting object store; the put
 * either landed or not), then the same copy run again by a new process (a new namespace over
 * the same objects, its clock past the dead writer's lease): it completes equal to the source,
 * and until the commit the destination shows nothing of it. This is what checks that the
 * engine's formats tolerate "each part old or new". Every put, landed and lost (a few seconds,
 * so no slice is needed). Then: a copy interrupted (Ctrl-C) whose cleanup crashes at every
 * delete, run again.
 */
import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { copyVolume } from '../../../src/transfer/copy.js';
import { FaultObjectStore } from '../../../src/transfer/fault-objects.js';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { ObjectNamespace } from '../../../src/transfer/object-namespace.js';
import type { ObjectStore } from '../../../src/transfer/object-store.js';
import { baseOnly, fourLayers, view, type View } from './copy-fixture.js';

const HOUR = 3_600_000;
/** parts of 4 KiB: the fixture's layers span several parts each, so puts land part by part */
const opts = { partSize: 4096, lockTtlMs: 10 * 60_000 };
/** a later process: the crashed one's lease has expired */
const later = (o: ObjectStore) => new ObjectNamespace(o, { ...opts, now: () => Date.now() + HOUR });

async function viewOrNone(o: ObjectStore): Promise<View | 'none'> {
  try {
    return await view(new ObjectNamespace(o, { ...opts, readOnly: true }));
  } catch (e) {
    if (isStrataError(e) && (e.code === 'not-found' || e.code === 'corrupt')) return 'none';
    throw e;
  }
}

describe.each([
  ['a new volume', false],
  ['a volume holding the base', true],
])('copy into an object namespace crashed at every put, into %s, then run again', (_what, existing) => {
  it('completes equal to the source, shows nothing half-done meanwhile, and keeps finished layers', { timeout: 300_000 }, async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const want = await view(src);
    const fresh = async () => {
      const o = new MemoryObjectStore();
      if (existing) await baseOnly(new ObjectNamespace(o, opts));
      return o;
    };
    const before = existing ? await viewOrNone(await fresh()) : 'none';
    const probe = new FaultObjectStore(await fresh());
    const clean = await copyVolume(src, new ObjectNamespace(probe, opts));
    expect(clean.copied).toBe(existing ? 3 : 4);
    const total = probe.puts;
    expect(total).toBeGreaterThan(20);
    const failures: string[] = [];
    let checked = 0;
    let resumed = 0;
    for (let k = 0; k < total && failures.length < 5; k++) {
      for (const landed of [false, true]) {
        const inner = await fresh();
        const faulty = new FaultObjectStore(inner, { crashAtPut: k, landed });
        const err = await copyVolume(src, new ObjectNamespace(faulty, opts)).then(
          () => null,
          (e: unknown) => e,
        );
        if (err === null) {
          failures.push(`put ${k}: the copy did not crash`);
          continue;
        }
        checked++;
        const seen = await viewOrNone(inner);
        if (JSON.stringify(seen) !== JSON.stringify(before) && JSON.stringify(seen) !== JSON.stringify(want)) {
          failures.push(`put ${k} (${landed ? 'landed' : 'lost'}): after the crash the destination shows ${JSON.stringify(seen)}`);
          continue;
        }
        try {
          const r = await copyVolume(src, later(inner));
          resumed += r.resumed;
          if (r.reused + r.copied + r.resumed !== 4) failures.push(`put ${k}: the rerun reported ${JSON.stringify(r)}`);
          const got = await viewOrNone(inner);
          if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`put ${k} (${landed ? 'landed' : 'lost'}): after the rerun ${JSON.stringify(got)}`);
          const ns = later(inner);
          if (await ns.exists('staging.mark')) failures.push(`put ${k}: the staging mark was left`);
          if ([...inner.objects.keys()].includes('volume/lock')) failures.push(`put ${k}: the lease was left`);
        } catch (e) {
          failures.push(`put ${k} (${landed ? 'landed' : 'lost'}): the rerun threw ${String(e)}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBe(2 * total);
    expect(resumed).toBeGreaterThan(0);
  });
});

describe('copy into an object namespace interrupted (Ctrl-C), crashed at every delete of its cleanup, then run again', () => {
  it('completes equal to the source', { timeout: 300_000 }, async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const want = await view(src);
    // interrupted once the third layer's data starts to go up: two layers to remove
    const interrupted = (inner: ObjectStore, crashAtDelete?: number) => {
      const ac = new AbortController();
      const f = new FaultObjectStore(inner, {
        beforePut: (key) => {
          if (key.includes('L000003.data/')) ac.abort();
        },
        ...(crashAtDelete === undefined ? {} : { crashAtDelete, landed: crashAtDelete % 2 === 1 }),
      });
      return { f, run: copyVolume(src, new ObjectNamespace(f, opts), { signal: ac.signal }).then(() => null, (e: unknown) => e) };
    };
    const probe = interrupted(new MemoryObjectStore());
    expect(await probe.run).toMatchObject({ code: 'aborted' });
    const total = probe.f.deletes;
    expect(total).toBeGreaterThan(3);
    const failures: string[] = [];
    for (let k = 0; k < total; k++) {
      const inner = new MemoryObjectStore();
      const { run } = interrupted(inner, k);
      if ((await run) === null) failures.push(`delete ${k}: the copy did not fail`);
      if ((await viewOrNone(inner)) !== 'none') failures.push(`delete ${k}: a volume shows after the crash`);
      try {
        await copyVolume(src, later(inner));
        if (JSON.stringify(await viewOrNone(inner)) !== JSON.stringify(want)) failures.push(`delete ${k}: the rerun is not the source`);
      } catch (e) {
        failures.push(`delete ${k}: the rerun threw ${String(e)}`);
      }
    }
    expect(failures).toEqual([]);
  });
});
