import type { ChainLayer } from './chain.js';
import { verifyRun, type LayerChecksums, type VerifyMode } from './verify.js';

/**
 * Reads one run of a layer's blocks (consecutive slots) into part of a caller's buffer, checked
 * against the layer's stored block checksums as `verify` says (src/volume/verify.ts). The chain
 * and the copy-on-read cache read through it, so no read path skips the check.
 */
export class RunReader {
  constructor(
    readonly blockSize: number,
    readonly verify: VerifyMode,
    /** names the volume in errors */
    readonly label: string,
  ) {}

  /**
   * Read bytes [from, to) of the volume, held by `layer` in blocks [b, e) at consecutive slots
   * from `s`, into target (target[0] is volume byte `offset`): pushes the reads on `ios`. With
   * checksums, whole blocks are read in place and verified when the read completes; a partial
   * block is read whole into its own buffer and verified, unless it was verified before (mode
   * 'on'), then only its part is read.
   */
  read(layer: ChainLayer, s: number, b: number, e: number, from: number, to: number, offset: number, target: Uint8Array, ios: Promise<void>[]): void {
    const bs = this.blockSize;
    const verified = layer.verified;
    if (this.verify === 'off' || verified === undefined) {
      ios.push(layer.data.readInto(s * bs + (from - b * bs), target.subarray(from - offset, to - offset)));
      return;
    }
    const [wb, we] = wholeBlocks(b, e, from, to, bs);
    if (we > wb) {
      const view = target.subarray(wb * bs - offset, we * bs - offset);
      ios.push(layer.data.readInto((s + wb - b) * bs, view).then(() => verifyRun(this.label, layer as LayerChecksums, wb, we - wb, view, bs)));
    }
    const partial = (p: number) => {
      const pFrom = Math.max(from, p * bs);
      const pTo = Math.min(to, (p + 1) * bs);
      const slotAt = (s + p - b) * bs;
      if (this.verify === 'on' && verified.test(p)) {
        ios.push(layer.data.readInto(slotAt + (pFrom - p * bs), target.subarray(pFrom - offset, pTo - offset)));
        return;
      }
      const whole = new Uint8Array(bs);
      ios.push(
        layer.data.readInto(slotAt, whole).then(() => {
          verifyRun(this.label, layer as LayerChecksums, p, 1, whole, bs);
          target.set(whole.subarray(pFrom - p * bs, pTo - p * bs), pFrom - offset);
        }),
      );
    };
    if (wb > b) partial(b);
    if (we < e && e - 1 >= wb) partial(e - 1);
  }

  /** read without a promise: false when a store declines to read synchronously. */
  readNow(layer: ChainLayer, s: number, b: number, e: number, from: number, to: number, offset: number, target: Uint8Array): boolean {
    const data = layer.data;
    if (data.readIntoNow === undefined) return false;
    const bs = this.blockSize;
    const verified = layer.verified;
    if (this.verify === 'off' || verified === undefined) return data.readIntoNow(s * bs + (from - b * bs), target.subarray(from - offset, to - offset));
    const [wb, we] = wholeBlocks(b, e, from, to, bs);
    if (we > wb) {
      const view = target.subarray(wb * bs - offset, we * bs - offset);
      if (!data.readIntoNow((s + wb - b) * bs, view)) return false;
      verifyRun(this.label, layer as LayerChecksums, wb, we - wb, view, bs);
    }
    const partial = (p: number): boolean => {
      const pFrom = Math.max(from, p * bs);
      const pTo = Math.min(to, (p + 1) * bs);
      const slotAt = (s + p - b) * bs;
      if (this.verify === 'on' && verified.test(p)) return data.readIntoNow!(slotAt + (pFrom - p * bs), target.subarray(pFrom - offset, pTo - offset));
      const whole = (this.nowScratch ??= new Uint8Array(bs));
      if (!data.readIntoNow!(slotAt, whole)) return false;
      verifyRun(this.label, layer as LayerChecksums, p, 1, whole, bs);
      target.set(whole.subarray(pFrom - p * bs, pTo - p * bs), pFrom - offset);
      return true;
    };
    if (wb > b && !partial(b)) return false;
    if (we < e && e - 1 >= wb && !partial(e - 1)) return false;
    return true;
  }

  /** one block of scratch for synchronous partial reads (nothing else runs meanwhile) */
  private nowScratch: Uint8Array | null = null;
}

/**
 * The blocks of [b, e) that [from, to) covers whole, as [wb, we) (empty when we <= wb). The
 * partial blocks are b (when wb > b) and e - 1 (when we < e), possibly the same block.
 */
function wholeBlocks(b: number, e: number, from: number, to: number, bs: number): [number, number] {
  const wb = from > b * bs ? b + 1 : b;
  const we = to < e * bs ? e - 1 : e;
  return [wb, Math.max(wb, we)];
}
