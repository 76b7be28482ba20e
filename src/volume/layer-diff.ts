import type { Volume } from './volume.js';

/**
 * Which blocks may differ between two views of one volume (snapshots or the live volume), from
 * the layer maps alone. Both views are chains in the volume's tree of layers; below the first
 * layer they share, they read the same layers. A block no layer above that point holds (on either
 * side) resolves to the same owner in both views, so it reads the same. The answer is the blocks
 * held (data or known-zero) by the layers above the shared part, on both sides: a superset of
 * what differs (a layer may hold a block with the same bytes as below), never less.
 *
 * Cost: in proportion to the map pages of those layers (what they hold), not to the volume.
 * Lives in src/volume/ because it needs nothing but the volume's own chains and maps.
 */

/** A view of a volume: a snapshot's name, or undefined for the live volume. */
export type LayerView = string | undefined;

/** The layers of `a` and `b` above the part they share, top first, each side. */
export function layersBetween(volume: Volume, a: LayerView, b: LayerView): { onlyA: string[]; onlyB: string[] } {
  const ca = volume.layerChain(a);
  const cb = volume.layerChain(b);
  const inB = new Set(cb);
  const cut = ca.findIndex((id) => inB.has(id));
  const shared = cut < 0 ? null : ca[cut]!;
  const onlyA = cut < 0 ? ca : ca.slice(0, cut);
  const cutB = shared === null ? cb.length : cb.indexOf(shared);
  return { onlyA, onlyB: cb.slice(0, cutB) };
}

/** Blocks that may differ between views `a` and `b` (see the file comment), ascending, no repeats. */
export function blocksBetweenViews(volume: Volume, a: LayerView, b: LayerView): Float64Array {
  const { onlyA, onlyB } = layersBetween(volume, a, b);
  return heldBlocks(volume, [...onlyA, ...onlyB]);
}

/** Blocks held by any of `layers`, ascending, no repeats. */
export function heldBlocks(volume: Volume, layers: readonly string[]): Float64Array {
  let out = new Float64Array(1024);
  let n = 0;
  for (const id of layers) {
    for (const [block] of volume.layer(id).entries()) {
      if (n === out.length) {
        const g = new Float64Array(out.length * 2);
        g.set(out);
        out = g;
      }
      out[n++] = block;
    }
  }
  return sortUnique(out.subarray(0, n));
}

/** Sort `a` in place and drop repeats (returns a view of `a`). */
export function sortUnique(a: Float64Array): Float64Array {
  a.sort();
  let k = 0;
  for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[k - 1]) a[k++] = a[i]!;
  return a.subarray(0, k);
}
