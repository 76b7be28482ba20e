import { StrataError } from '../errors.js';
import type { LayerRecord, Manifest } from '../format/manifest.js';

/**
 * The links of a layer tree: each layer records the content ID its parent had when the layer
 * was stacked on it (`parentContentId`), as a VMDK child records its parent's CID. A sealed
 * parent whose recorded content ID differs from what its child recorded is not the layer the
 * child was made on (changed, replaced, or a copy linked it to the wrong one): the child's view
 * over it would be wrong, so the chain is refused.
 *
 * A link is checked when both ends are recorded: the child's `parentContentId` is a string (absent
 * in manifests older than the field, which are not back-filled: a back-fill would only record
 * what is there now and prove nothing) and the parent's `contentId` is recorded (it is null while
 * the parent is unsealed or a merge is rewriting it; the merge's commit records both again).
 */
export function checkLinks(m: Manifest, what = 'The volume'): void {
  const byId = new Map(m.layers.map((l) => [l.id, l]));
  for (const r of m.layers) {
    if (r.parent === null || typeof r.parentContentId !== 'string') continue;
    const p = byId.get(r.parent);
    if (!p || p.contentId === null) continue;
    if (p.contentId !== r.parentContentId) throw linkMismatch(r, p, what);
  }
}

export function linkMismatch(child: LayerRecord, parent: LayerRecord, what: string): StrataError {
  return new StrataError(
    'corrupt',
    `${what}: layer ${child.id} was made on a parent with content ID ${child.parentContentId}, but its parent ${parent.id} now has content ID ${parent.contentId}; ` +
      `the parent changed or was replaced after ${child.id} was made, so ${child.id}'s view over it would be wrong. Nothing is served from this chain. ` +
      `Restore the parent layer's files from a backup, or copy the volume again from its source (\`stratadisk copy\`).`,
  );
}

/** The value a layer stacked on `parent` records: the parent's content ID, or null (no parent, or unsealed). */
export function parentLink(m: Manifest, parent: string | null): string | null {
  if (parent === null) return null;
  return m.layers.find((l) => l.id === parent)?.contentId ?? null;
}

/** After `id`'s content ID (or its place) changed in `m`: its children record its current ID. */
export function relinkChildren(m: Manifest, id: string): void {
  const rec = m.layers.find((l) => l.id === id);
  const link = rec && rec.sealed ? rec.contentId : null;
  for (const l of m.layers) if (l.parent === id) l.parentContentId = link;
}
