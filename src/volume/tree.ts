import type { LayerRecord, Manifest } from '../format/manifest.js';
import { relinkChildren } from './links.js';

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
  return { ...m, layers: m.layers.map((l) => ({ ...l })), snapshots: m.snapshots.map((s) => ({ ...s })), ...(m.requires ? { requires: m.requires.map((r) => ({ ...r, ...(r.keeps ? { keeps: [...r.keeps] } : {}), ...(r.settings ? { settings: { ...r.settings } } : {}) })) } : {}) };
}

/**
 * The manifest after layer `lowerId` and its only child `upperId` became one layer. `up`: the
 * child absorbed the lower layer's blocks and takes its parent; `down`: the lower layer absorbed
 * the child's blocks and takes its place (its snapshots, children and the active role).
 * `contentId` is the surviving layer's content ID (recorded only if it is sealed).
 */
export function collapsedManifest(m: Manifest, direction: 'up' | 'down', lowerId: string, upperId: string, contentId: string): Manifest {
  const next = cloneManifest(m);
  const lower = layerRecord(next, lowerId);
  const upper = layerRecord(next, upperId);
  if (direction === 'up') {
    upper.parent = lower.parent;
    if (lower.parentContentId === undefined) delete upper.parentContentId;
    else upper.parentContentId = lower.parentContentId;
    if (upper.sealed) upper.contentId = contentId;
    next.layers = next.layers.filter((l) => l.id !== lowerId);
    relinkChildren(next, upperId);
  } else {
    lower.sealed = upper.sealed;
    lower.contentId = upper.sealed ? contentId : null;
    for (const s of next.snapshots) if (s.layer === upperId) s.layer = lowerId;
    for (const l of next.layers) if (l.parent === upperId) l.parent = lowerId;
    if (next.active === upperId) next.active = lowerId;
    next.layers = next.layers.filter((l) => l.id !== upperId);
    relinkChildren(next, lowerId);
  }
  return next;
}
