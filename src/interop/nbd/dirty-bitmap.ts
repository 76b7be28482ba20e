import { STATE_DIRTY } from './protocol.js';

/**
 * A dirty bitmap served as QEMU's `qemu:dirty-bitmap:NAME` meta context (qemu docs/interop/
 * nbd.rst): the byte ranges that changed since a point (src/journal/diff.ts computes them, a
 * superset in whole blocks), for incremental backup tools that read only what is dirty. Fixed for
 * the life of the server: it describes a read-only view.
 */
export interface DirtyBitmap {
  /** the NAME in `qemu:dirty-bitmap:NAME` */
  name: string;
  /** ascending, not overlapping, not touching */
  changed: readonly { offset: number; length: number }[];
}

/**
 * BLOCK_STATUS descriptors of [offset, offset+length): runs of STATE_DIRTY and clean (0), at
 * most `max` of them (the client asks again from where they end).
 */
export function dirtyDescriptors(bitmap: DirtyBitmap, offset: number, length: number, max: number): [length: number, flags: number][] {
  const c = bitmap.changed;
  const end = offset + length;
  // the first extent that ends after offset
  let lo = 0;
  let hi = c.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (c[mid]!.offset + c[mid]!.length <= offset) lo = mid + 1;
    else hi = mid;
  }
  const out: [number, number][] = [];
  let at = offset;
  for (let k = lo; at < end && out.length < max; ) {
    const e = c[k];
    if (!e || e.offset >= end) {
      out.push([end - at, 0]);
      break;
    }
    if (e.offset > at) {
      out.push([e.offset - at, 0]);
      at = e.offset;
      continue;
    }
    const to = Math.min(end, e.offset + e.length);
    out.push([to - at, STATE_DIRTY]);
    at = to;
    k++;
  }
  return out;
}
