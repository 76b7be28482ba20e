import { NO_OWNER, type Chain } from './chain.js';

/** One extent of a volume's map, in the spirit of `qemu-img map --output=json`. */
export interface Extent {
  start: number;
  length: number;
  /** 0 = the top layer of the view; chain length = no layer holds it */
  depth: number;
  /** some layer of the view holds this range */
  present: boolean;
  /** reads as zeros */
  zero: boolean;
  /** has stored data */
  data: boolean;
  /** id of the layer holding it, if any */
  layer?: string;
}

/**
 * Walk the owner runs of the view (one kernel call per window) and merge equal neighbours.
 * With `from`/`to` (bytes), only that range is described; extents are clipped to it.
 */
export function extents(chain: Chain, size: number, from = 0, to = size): Extent[] {
  const bs = chain.blockSize;
  const firstBlock = Math.floor(from / bs);
  const blocks = to > from ? Math.ceil(to / bs) : firstBlock;
  const out: Extent[] = [];
  const push = (startBlock: number, endBlock: number, depth: number, zero: boolean, data: boolean) => {
    const start = Math.max(from, startBlock * bs);
    const end = Math.min(to, size, endBlock * bs);
    if (end <= start) return;
    const last = out[out.length - 1];
    if (last && last.depth === depth && last.zero === zero && last.data === data && last.start + last.length === start) {
      last.length += end - start;
      return;
    }
    const e: Extent = { start, length: end - start, depth, present: depth < chain.layers.length, zero, data };
    if (e.present) e.layer = chain.layers[depth]!.id;
    out.push(e);
  };
  const WINDOW = 1 << 24;
  for (let w = firstBlock; w < blocks; w += WINDOW) {
    const runs = chain.runs(w, Math.min(WINDOW, blocks - w));
    for (let r = 0; r < runs.length; r += 3) {
      const s = runs[r]!;
      const e = s + runs[r + 1]!;
      const owner = runs[r + 2]!;
      if (owner === NO_OWNER) {
        push(s, e, chain.layers.length, true, false);
        continue;
      }
      const layer = chain.layers[owner]!;
      let b = s;
      while (b < e) {
        const zero = layer.slot(b) < 0;
        let k = b + 1;
        while (k < e && layer.slot(k) < 0 === zero) k++;
        push(b, k, owner, zero, !zero);
        b = k;
      }
    }
  }
  return out;
}
