/**
 * Issue 14, item 2: every layer records its parent's content ID (`parentContentId`), and opening
 * a chain checks each link: a parent that is not the layer its child was made on is refused.
 */
import { describe, expect, it } from 'vitest';
import { ManifestStore, type Manifest } from '../../../src/format/manifest.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { dataName, mapName } from '../../../src/volume/layer.js';
import { Volume } from '../../../src/volume/volume.js';

const BS = 4096;
const SIZE = 16 * BS;
const fill = (n: number, b: number) => new Uint8Array(n).fill(b);

/** base (blocks 0-3 = a) <- s1 (block 4 = b) <- live (block 5 = c) */
async function chain(ns: MemoryNamespace, a: number): Promise<void> {
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  await v.write(0, fill(4 * BS, a));
  await v.snapshot('base');
  await v.write(4 * BS, fill(BS, 0xb0));
  await v.snapshot('s1');
  await v.write(5 * BS, fill(BS, 0xc0));
  await v.close();
}

async function editManifest(ns: MemoryNamespace, edit: (m: Manifest) => void): Promise<void> {
  const ms = await ManifestStore.open(ns);
  const m = structuredClone(ms.manifest);
  edit(m);
  await ms.commit(m);
}

/** Every link of `m` where both ends are recorded. */
function links(m: Manifest): [child: string, recorded: string | null | undefined, parentNow: string | null][] {
  return m.layers.filter((l) => l.parent !== null).map((l) => [l.id, l.parentContentId, m.layers.find((p) => p.id === l.parent)!.contentId]);
}

describe('layer links (parentContentId)', () => {
  it('each layer stacked on a sealed parent records its content ID', async () => {
    const ns = new MemoryNamespace();
    await chain(ns, 0xa0);
    const v = await Volume.open(ns);
    const m = v.manifest;
    expect(links(m).length).toBe(2);
    for (const [child, recorded, parentNow] of links(m)) expect(recorded, child).toBe(parentNow);
    expect(m.layers.find((l) => l.parent === null)!.parentContentId ?? null).toBeNull();
    // revert stacks a new live layer on the snapshot: linked too
    await v.revert('base');
    const r = v.manifest.layers.find((l) => l.id === v.manifest.active)!;
    expect(r.parentContentId).toBe(v.manifest.layers.find((l) => l.id === r.parent)!.contentId);
    await v.close();
  });

  it('a parent replaced by another layer (its own content ID consistent) is refused, naming the child', async () => {
    const ns = new MemoryNamespace();
    await chain(ns, 0xa0);
    const other = new MemoryNamespace();
    await chain(other, 0xee);
    const otherId = (await ManifestStore.open(other)).manifest.layers.find((l) => l.id === 'L000001')!.contentId!;
    // Swap in the other volume's base files and record its (correct) content ID for them:
    // the base opens fine on its own, but it is not the layer s1 was made on.
    for (const f of [dataName('L000001'), mapName('L000001')]) ns.files.set(f, other.files.get(f)!);
    await editManifest(ns, (m) => {
      m.layers.find((l) => l.id === 'L000001')!.contentId = otherId;
    });
    const err = await Volume.open(ns, { readOnly: true }).then(
      async (v) => {
        await v.close();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'corrupt' });
    expect(String((err as Error).message)).toMatch(/layer L000002 was made on a parent with content ID [0-9a-f]{32}, but its parent L000001 now has content ID/);
    await expect(Volume.open(ns)).rejects.toMatchObject({ code: 'corrupt' });
  });

  it('a manifest without the field (written before it existed) opens with no check for those links', async () => {
    const ns = new MemoryNamespace();
    await chain(ns, 0xa0);
    await editManifest(ns, (m) => {
      for (const l of m.layers) delete l.parentContentId;
    });
    const v = await Volume.open(ns);
    expect(await v.openSnapshot('s1').read(4 * BS, 1)).toEqual(fill(1, 0xb0));
    // not back-filled; a layer stacked from now on is linked
    expect(v.manifest.layers.every((l) => l.parentContentId === undefined)).toBe(true);
    await v.snapshot('s2');
    expect(v.manifest.layers.find((l) => l.id === v.manifest.active)!.parentContentId).toBe(v.snapshots().find((s) => s.name === 's2')!.contentId);
    await v.close();
  });

  it('merges (deleting snapshots) keep every link equal to the parent it now has', async () => {
    const ns = new MemoryNamespace();
    await chain(ns, 0xa0);
    let v = await Volume.open(ns);
    await v.snapshot('s2');
    await v.write(6 * BS, fill(BS, 0xd0));
    await v.snapshot('s3');
    await v.deleteSnapshot('s1'); // merged with its child (s2's layer)
    await v.deleteSnapshot('base'); // merged with its child
    await v.close();
    v = await Volume.open(ns);
    for (const [child, recorded, parentNow] of links(v.manifest)) if (parentNow !== null) expect(recorded, child).toBe(parentNow);
    expect(await v.openSnapshot('s3').read(0, 7 * BS)).toEqual(new Uint8Array([...fill(4 * BS, 0xa0), ...fill(BS, 0xb0), ...fill(BS, 0xc0), ...fill(BS, 0xd0)]));
    await v.close();
  });

  it('a bad parentContentId is a corrupt manifest', async () => {
    const ns = new MemoryNamespace();
    await chain(ns, 0xa0);
    const ms = await ManifestStore.open(ns);
    const m = structuredClone(ms.manifest);
    m.layers[1]!.parentContentId = 'not hex' as string;
    await expect(ms.commit(m)).rejects.toMatchObject({ code: 'corrupt' });
  });
});
