import type { LayerRecord, Manifest } from '../format/manifest.js';

/** Pure helpers over the layer tree recorded in a manifest. */

export function layerRecord(m: Manifest, id: string): LayerRecord {
  const r = m.layers.find((l) => l.id === id);
  if (!r) throw new Error(`internal: layer ${id} not in manifest`);
  return r;
}

/** Layer ids from `top` down to the base. */
export function chainIds(m: Manifest, top: string): string[] {
  const ids: string[] = [];
  for (let id: string | null = top; id !== null; id = layerRecord(m, id).parent) ids.push(id);
  return ids;
}

export function children(m: Manifest, id: string): LayerRecord[] {
  return m.layers.filter((l) => l.parent === id);
}

/** Is the layer named by a snapshot or the active layer (so its own view must be kept)? */
export function isReferenced(m: Manifest, id: string): boolean {
  return m.active === id || m.snapshots.some((s) => s.layer === id);
}

export function cloneManifest(m: Manifest): Manifest {
  return { ...m, layers: m.layers.map((l) => ({ ...l })), snapshots: m.snapshots.map((s) => ({ ...s })) };
}
