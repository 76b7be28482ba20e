import type { SparseBitmap } from '../wasm/index.js';

/**
 * Bitmap changes gathered over a batch of entries and applied as one kernel call per run of
 * consecutive blocks (per bitmap page), instead of one call per block. Ownership changes are
 * applied in the order they were made (a run grows while blocks come consecutively with the same
 * change), so the result equals the block-by-block one.
 */
export class BitmapRuns {
  /** flat [set 1 | clear 0, start, count]* */
  private owned: number[] = [];
  /** flat [start, count]* of blocks whose verified bit is cleared */
  private unverified: number[] = [];

  own(block: number): void {
    this.push(1, block);
  }
  disown(block: number): void {
    this.push(0, block);
  }
  unverify(block: number): void {
    const u = this.unverified;
    const n = u.length;
    if (n > 0 && u[n - 2]! + u[n - 1]! === block) u[n - 1]! += 1;
    else u.push(block, 1);
  }

  private push(op: number, block: number): void {
    const o = this.owned;
    const n = o.length;
    if (n > 0 && o[n - 3] === op && o[n - 2]! + o[n - 1]! === block) o[n - 1]! += 1;
    else o.push(op, block, 1);
  }

  /** Apply the gathered changes, then forget them. */
  apply(owned: SparseBitmap, verified: SparseBitmap): void {
    const o = this.owned;
    for (let i = 0; i < o.length; i += 3) {
      if (o[i] === 1) owned.set(o[i + 1]!, o[i + 2]!);
      else owned.clear(o[i + 1]!, o[i + 2]!);
    }
    const u = this.unverified;
    for (let i = 0; i < u.length; i += 2) verified.clear(u[i]!, u[i + 1]!);
    o.length = 0;
    u.length = 0;
  }
}
