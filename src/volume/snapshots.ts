import { StrataError } from '../errors.js';
import { SNAPSHOT_NAME, type SnapshotRecord } from '../format/manifest.js';
import { Chain } from './chain.js';
import { collectGarbage } from './merge.js';
import { chainIds, cloneManifest, layerRecord } from './tree.js';
import { viewReader } from './views.js';
import type { VolumeCore } from './core.js';
import type { VolumeReader } from './volume-reader.js';

/** Snapshots and the tree of layers: take, list, open, revert to, delete (public as Volume's methods). */

export interface SnapshotInfo {
  name: string;
  layer: string;
  created: string;
  contentId: string | null;
  /** depth of the snapshot's layer in the tree (0 = base) */
  depth: number;
}

/** Seal the active layer as snapshot `name` and stack a new active layer on it. O(1). */
export async function snapshot(core: VolumeCore, name: string): Promise<SnapshotInfo> {
  core.assertWritable();
  core.assertNoJob('take a snapshot');
  return takeSnapshot(core, name);
}

export function takeSnapshot(core: VolumeCore, name: string): Promise<SnapshotInfo> {
  if (!SNAPSHOT_NAME.test(name)) throw new StrataError('invalid-argument', `Snapshot name "${name}" is not allowed: use letters, digits and . _ + : - (up to 128).`);
  return core.exclusive(async () => {
    if (core.manifest.snapshots.some((s) => s.name === name)) throw new StrataError('exists', `A snapshot named "${name}" already exists; pick another name or delete it first.`);
    const old = core.active;
    await old.flush();
    const created = new Date().toISOString();
    const snap: SnapshotRecord = { name, layer: old.id, created };
    await core.stackActiveLayer(old.id, (m) => {
      const rec = layerRecord(m, old.id);
      rec.sealed = true;
      rec.contentId = old.contentId();
      m.snapshots.push(snap);
    });
    return snapshotInfo(core, snap);
  });
}

export function listSnapshots(core: VolumeCore): SnapshotInfo[] {
  core.assertOpen();
  return core.manifest.snapshots.map((s) => snapshotInfo(core, s));
}

function snapshotInfo(core: VolumeCore, s: SnapshotRecord): SnapshotInfo {
  return { name: s.name, layer: s.layer, created: s.created, contentId: layerRecord(core.manifest, s.layer).contentId, depth: chainIds(core.manifest, s.layer).length - 1 };
}

export function findSnapshot(core: VolumeCore, name: string): SnapshotRecord {
  const s = core.manifest.snapshots.find((x) => x.name === name);
  if (!s) throw new StrataError('not-found', `No snapshot named "${name}". List them with \`stratadisk snapshots DIR\`.`);
  return s;
}

/** A read-only view of snapshot `name`. It follows the snapshot through merges; it fails with `not-found` once the snapshot is deleted. */
export function openSnapshot(core: VolumeCore, name: string): VolumeReader {
  core.assertOpen();
  findSnapshot(core, name);
  return viewReader(core, () => core.chainFor(findSnapshot(core, name).layer));
}

/** Throw away the active layer's changes and continue from snapshot `name` (which is kept). */
export async function revert(core: VolumeCore, name: string): Promise<void> {
  core.assertWritable();
  core.assertNoJob('revert');
  core.assertNoObservers('revert');
  await core.exclusive(() => core.revertToLayer(findSnapshot(core, name).layer));
}

/** Delete snapshot `name`. Its layer is merged into its child (or dropped), so no other snapshot changes. */
export async function deleteSnapshot(core: VolumeCore, name: string): Promise<void> {
  core.assertWritable();
  core.assertNoJob('delete a snapshot');
  await core.exclusive(async () => {
    findSnapshot(core, name);
    // Snapshot operations are durability points, like creating one.
    await core.active.flush();
    const m = cloneManifest(core.manifest);
    m.snapshots = m.snapshots.filter((s) => s.name !== name);
    await core.manifestStore.commit(m);
    await collectGarbage(core);
    core.rebuildChain();
  });
}

/** Layer ids of a view, top first: the live volume's chain, or snapshot `name`'s. */
export function layerChain(core: VolumeCore, name?: string): string[] {
  core.assertOpen();
  return chainIds(core.manifest, name === undefined ? core.manifest.active : findSnapshot(core, name).layer);
}

/**
 * One layer on its own, for exporting layer by layer: reads give its own blocks (known-zero
 * blocks and blocks it does not hold read as zeros) and `map()` marks what it holds as present
 * (data or zero) and everything else as absent. Fails with `not-found` once the layer is gone.
 */
export function openLayer(core: VolumeCore, id: string): VolumeReader {
  core.assertOpen();
  const chainNow = () => {
    const layer = core.layers.get(id);
    if (!layer) throw new StrataError('not-found', `Layer ${id} is no longer part of the volume.`);
    return new Chain([layer], core.blockSize, { verify: core.verify, label: core.label });
  };
  chainNow();
  return viewReader(core, chainNow);
}
