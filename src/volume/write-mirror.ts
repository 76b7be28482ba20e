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
    const n = w.blocks.length;
    const zero = new Uint8Array(n);
    let dataBlocks = 0;
    for (let k = 0; k < n; k++) {
      if (w.slots[k] === SLOT_ZERO) zero[k] = 1;
      else dataBlocks++;
    }
    try {
      // each mirrored data block gets a new slot: the target is never overwritten in place
      await this.target.putBlocks({ blocks: w.blocks, index: w.dataIndex, zero, data: w.data, hashes: w.hashes });
    } catch (e) {
      this.error = e;
      return;
    }
    for (const b of w.blocks) this.written.add(b);
    this.bytes += dataBlocks * this.target.blockSize;
  }
}
