/**
 * Issue 14, item 3: `copy` of a chain between namespaces, re-linking the layers the destination
 * already holds (by content ID, parent and checked data) and copying the rest.
 */
import { describe, expect, it } from 'vitest';
import { ManifestStore } from '../../../src/format/manifest.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { copyVolume } from '../../../src/transfer/copy.js';
import { dataName } from '../../../src/volume/layer.js';
import { Volume } from '../../../src/volume/volume.js';
import { BS, baseOnly, fill, fourLayers, view } from './copy-fixture.js';

const DELTA = (4 + 4 + 5) * BS; // s1 (4 blocks), s2 (4), live (4 + the block written in part)

describe('copy', () => {
  it('a 4-layer chain into an empty namespace: every layer copied, every snapshot and the live view equal', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const dst = new MemoryNamespace();
    const r = await copyVolume(src, dst);
    expect(r).toMatchObject({ into: 'new', reused: 0, copied: 4, resumed: 0, bytesMoved: 16 * BS + DELTA, snapshots: ['base', 's1', 's2'] });
    expect(r.layers.map((l) => l.how)).toEqual(['copied', 'copied', 'copied', 'copied']);
    expect(await view(dst)).toEqual(await view(src));
    // the copy is a volume of its own: writable, linked, with the source's content IDs
    const v = await Volume.open(dst);
    const s = await Volume.open(src, { readOnly: true });
    expect(v.snapshots().map((x) => [x.name, x.contentId])).toEqual(s.snapshots().map((x) => [x.name, x.contentId]));
    expect(v.manifest.uuid).not.toBe(s.manifest.uuid);
    for (const l of v.manifest.layers) if (l.parent) expect(l.parentContentId).toBe(v.manifest.layers.find((p) => p.id === l.parent)!.contentId);
    await v.write(0, fill(BS, 1));
    await v.close();
    await s.close();
    expect(await dst.exists('staging.mark')).toBe(false);
  });

  it('SRC@NAME into an empty namespace: the chain up to NAME, with an empty live layer on it', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const dst = new MemoryNamespace();
    const r = await copyVolume(src, dst, { snapshot: 's1' });
    expect(r).toMatchObject({ copied: 2, reused: 0, snapshots: ['base', 's1'] });
    const got = await view(dst);
    const want = await view(src);
    expect(got.snapshots).toEqual({ base: want.snapshots.base, s1: want.snapshots.s1 });
    expect(got.live).toBe(want.snapshots.s1);
  });

  it('into a namespace holding the base: the base is re-linked and only the deltas move', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const dst = new MemoryNamespace();
    await baseOnly(dst);
    const baseLayer = (await ManifestStore.open(dst)).manifest.snapshots[0]!.layer;
    const r = await copyVolume(src, dst);
    expect(r).toMatchObject({ into: 'existing', reused: 1, copied: 3, bytesMoved: DELTA, bytesVerified: 16 * BS, rejected: [] });
    expect(r.layers[0]).toMatchObject({ how: 'reused', target: baseLayer, bytes: 0 });
    expect(await view(dst)).toEqual(await view(src));
    // a second copy of the same chain moves nothing
    const again = await copyVolume(src, dst);
    expect(again).toMatchObject({ reused: 4, copied: 0, bytesMoved: 0 });
    expect(await view(dst)).toEqual(await view(src));
    // and a later snapshot of the source moves only what is new
    const v = await Volume.open(src);
    await v.snapshot('s3');
    await v.write(40 * BS, fill(BS, 0xe1));
    await v.close();
    const third = await copyVolume(src, dst, { snapshot: 's3' });
    expect(third).toMatchObject({ reused: 4, copied: 0, bytesMoved: 0 });
    const fourth = await copyVolume(src, dst);
    expect(fourth).toMatchObject({ reused: 4, copied: 1, bytesMoved: BS });
    expect(await view(dst)).toEqual(await view(src));
  });

  it('a candidate whose content ID matches but whose data is damaged is not used: it is reported and the layer copied', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const dst = new MemoryNamespace();
    await baseOnly(dst, 0xa1, 'golden');
    const baseLayer = (await ManifestStore.open(dst)).manifest.snapshots[0]!.layer;
    // flip one byte of the candidate's data: its map (and so its content ID) still match
    const data = await dst.open(dataName(baseLayer));
    const b = await data.read(5 * BS + 7, 1);
    await data.write(5 * BS + 7, new Uint8Array([b[0]! ^ 0x40]));
    await data.close();
    const r = await copyVolume(src, dst, { snapshot: 's2' });
    expect(r.reused).toBe(0);
    expect(r.copied).toBe(3);
    expect(r.rejected).toEqual([{ layer: baseLayer, contentId: r.layers[0]!.contentId, problem: expect.stringMatching(/block 5 .*does not match its checksum/) }]);
    expect(r.layers[0]!.target).not.toBe(baseLayer);
    // the copy reads the source's data (DST's own snapshot `base` stays damaged and says so when read)
    const v = await Volume.open(dst, { readOnly: true });
    const s = await Volume.open(src, { readOnly: true });
    expect(await v.read(0, v.size)).toEqual(await s.openSnapshot('s2').read(0, s.size));
    await expect(v.openSnapshot('golden').read(5 * BS, BS)).rejects.toMatchObject({ code: 'checksum-mismatch' });
    await v.close();
    await s.close();

    // the same, where DST's damaged layer carries the chain's own snapshot name: refused, saying why
    const named = new MemoryNamespace();
    await baseOnly(named);
    const layer = (await ManifestStore.open(named)).manifest.snapshots[0]!.layer;
    const d = await named.open(dataName(layer));
    await d.write(0, new Uint8Array([0]));
    await d.close();
    await expect(copyVolume(src, named, { snapshot: 's2' })).rejects.toMatchObject({ code: 'exists', message: expect.stringMatching(/snapshot named "base" on a layer with the right content ID whose data is damaged/) });
  });

  it('a damaged source block stops the copy (checksum-mismatch) and leaves nothing at DST', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const m = (await ManifestStore.open(src)).manifest;
    const s2 = m.snapshots.find((s) => s.name === 's2')!.layer;
    const data = await src.open(dataName(s2));
    await data.write(BS + 3, new Uint8Array([0x99]));
    await data.close();
    const dst = new MemoryNamespace();
    await expect(copyVolume(src, dst)).rejects.toMatchObject({ code: 'checksum-mismatch' });
    expect(await dst.list()).toEqual([]);
  });

  it('refuses a destination whose live view has changes no snapshot holds, and one with a same-named snapshot on other content', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const dst = new MemoryNamespace();
    await baseOnly(dst);
    const v = await Volume.open(dst);
    await v.write(0, fill(BS, 7));
    await v.close();
    const before = await view(dst);
    await expect(copyVolume(src, dst)).rejects.toMatchObject({ code: 'exists', message: expect.stringMatching(/changes in its live view/) });
    expect(await view(dst)).toEqual(before);

    const other = new MemoryNamespace();
    await baseOnly(other, 0x55); // a `base` snapshot with other content
    await expect(copyVolume(src, other)).rejects.toMatchObject({ code: 'exists', message: expect.stringMatching(/snapshot named "base"/) });
  });

  it('an abort (AbortSignal) mid-copy leaves DST as it was: nothing in a new one, the same volume in an existing one', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    for (const existing of [false, true]) {
      const dst = new MemoryNamespace();
      if (existing) await baseOnly(dst);
      const files = await dst.list();
      const ac = new AbortController();
      const p = copyVolume(src, dst, { signal: ac.signal, onProgress: (done) => done > 0 && ac.abort() });
      await expect(p).rejects.toMatchObject({ code: 'aborted' });
      expect(await dst.list()).toEqual(files);
    }
  });

  it('the live view needs the source writer lock; a snapshot does not', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const writer = await Volume.open(src);
    await expect(copyVolume(src, new MemoryNamespace())).rejects.toMatchObject({ code: 'locked', message: expect.stringMatching(/SRC@NAME/) });
    await expect(copyVolume(src, new MemoryNamespace(), { snapshot: 's2' })).resolves.toMatchObject({ copied: 3 });
    await writer.close();
  });
});
