import type { Layer } from './layer.js';
import type { LayerWrite, WriteObserver } from './write-observer.js';

/** One batch of whole-block writes into the active layer, as a write mirror sees it (see {@link LayerWrite}). */
export type MirroredWrite = LayerWrite;

/**
 * What a block job sends new writes to (the consolidation target, a mirror): one sync write
 * observer (write-observer.ts), installed with `VolumeJobAccess.setMirror`. It is called for every
 * batch written to the active layer, under the volume's write lock and in parallel with the active
 * layer's own data writes (a write completes when both have). A mirror never fails: it records
 * its own error for its job to report.
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
    let dataBlocks = n;
    if (w.zero) for (let k = 0; k < n; k++) if (w.zero[k]) dataBlocks--;
    try {
      // each mirrored data block gets a new slot: the target is never overwritten in place
      await this.target.putBlocks({ blocks: w.blocks, index: w.dataIndex, zero: w.zero, data: w.data, hashes: w.hashes });
    } catch (e) {
      this.error = e;
      return;
    }
    for (const b of w.blocks) this.written.add(b);
    this.bytes += dataBlocks * this.target.blockSize;
  }
}

/** `mirror` as a sync write observer that sees the blocks each write puts into the active layer. */
export function mirrorObserver(mirror: WriteMirror): WriteObserver {
  return {
    mode: 'sync',
    observe: (e) => (e.type === 'write' && e.layer.blocks.length > 0 ? mirror.write(e.layer) : undefined),
  };
}
