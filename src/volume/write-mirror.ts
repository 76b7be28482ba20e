import { SLOT_ZERO, type Layer } from './layer.js';

/**
 * One batch of whole-block writes into the active layer, as a write mirror sees it. `slots[k]`
 * is SLOT_ZERO for a known-zero entry, otherwise the block's bytes are at
 * `data[dataIndex[k] * blockSize ...]` and its XXH3-128 at `hashes[dataIndex[k] * 16 ...]`.
 */
export interface MirroredWrite {
  blocks: readonly number[];
  slots: readonly number[];
  data: Uint8Array;
  dataIndex: readonly number[];
  hashes: Uint8Array;
}

/**
 * A hook the volume calls for every batch written to its active layer, under its write lock and
 * in parallel with the active layer's own data writes (a write completes when both have). Block
 * jobs install one to send new writes to a second place: the consolidation target, a mirror.
 * A mirror never fails the volume's write: it records its own error for its job to report.
 */
export interface WriteMirror {
  write(w: MirroredWrite): Promise<void>;
}

/**
 * A write mirror into another layer (possibly in another namespace): each mirrored block gets a
 * fresh slot there (or a known-zero entry), and its index is remembered in `written`, so a
 * concurrent copy pass never overwrites it with older data.
 */
export class LayerMirror implements WriteMirror {
  readonly written = new Set<number>();
  error: unknown = null;
  bytes = 0;

  constructor(readonly target: Layer) {}

  async write(w: MirroredWrite): Promise<void> {
    if (this.error !== null) return;
    const bs = this.target.blockSize;
    const t = this.target;
    const data: number[] = [];
    for (let k = 0; k < w.blocks.length; k++) if (w.slots[k] !== SLOT_ZERO) data.push(k);
    const fresh: number[] = [];
    t.allocate(data.length, fresh);
    const slots = new Array<number>(w.blocks.length).fill(SLOT_ZERO);
    const ios: Promise<void>[] = [];
    // Coalesce runs of consecutive source bytes going to consecutive fresh slots.
    for (let j = 0; j < data.length; ) {
      let e = j + 1;
      while (e < data.length && fresh[e] === fresh[j]! + (e - j) && w.dataIndex[data[e]!] === w.dataIndex[data[j]!]! + (e - j)) e++;
      for (let q = j; q < e; q++) slots[data[q]!] = fresh[q]!;
      const i0 = w.dataIndex[data[j]!]!;
      t.markDataWritten();
      ios.push(t.data.write(fresh[j]! * bs, w.data.subarray(i0 * bs, (i0 + (e - j)) * bs)));
      j = e;
    }
    try {
      await Promise.all(ios);
    } catch (e) {
      t.unallocate(fresh);
      this.error = e;
      return;
    }
    t.setEntries(w.blocks, slots, w.blocks.length, w.hashes, w.dataIndex);
    for (const b of w.blocks) this.written.add(b);
    this.bytes += data.length * bs;
  }
}
