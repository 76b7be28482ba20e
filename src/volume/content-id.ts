import { hashSegments128, xxh3_128 } from '../wasm/index.js';

/**
 * Content ID of a layer: an order-independent hash of its entries, kept incrementally so
 * sealing a layer stays O(1). Each entry contributes XXH3-128(block u64 | state u8 | data hash)
 * and the layer keeps their sum mod 2^128 (a multiset hash): overwriting a block subtracts the
 * old contribution and adds the new one. Equal layer contents give equal IDs on every store;
 * it is an integrity and dedup key, not a defence against a deliberate collision.
 */
export const ITEM_SIZE = 25;
export const STATE_DATA = 1;
export const STATE_ZERO = 2;

export class ItemBuffer {
  bytes = new Uint8Array(ITEM_SIZE * 64);
  count = 0;

  push(block: number, state: number, hash: Uint8Array | null, hashOffset = 0): void {
    const at = this.count * ITEM_SIZE;
    if (at + ITEM_SIZE > this.bytes.length) {
      const next = new Uint8Array(this.bytes.length * 2);
      next.set(this.bytes);
      this.bytes = next;
    }
    const b = this.bytes;
    let lo = block % 2 ** 32;
    const hi = Math.floor(block / 2 ** 32);
    b[at] = lo & 0xff; b[at + 1] = (lo >>> 8) & 0xff; b[at + 2] = (lo >>> 16) & 0xff; b[at + 3] = lo >>> 24;
    b[at + 4] = hi & 0xff; b[at + 5] = (hi >>> 8) & 0xff; b[at + 6] = (hi >>> 16) & 0xff; b[at + 7] = hi >>> 24;
    b[at + 8] = state;
    if (hash) b.set(hash.subarray(hashOffset, hashOffset + 16), at + 9);
    else b.fill(0, at + 9, at + 25);
    this.count++;
  }

  clear(): void {
    this.count = 0;
  }
}

export class ContentAccumulator {
  private readonly sum = new Uint32Array(4);
  private scratch = new Uint8Array(0);
  /** number of entries currently counted */
  entries = 0;

  /** Add and remove batches of items (one kernel call each). */
  apply(add: ItemBuffer, remove: ItemBuffer): void {
    if (add.count > 0) this.fold(add, 1);
    if (remove.count > 0) this.fold(remove, -1);
    this.entries += add.count - remove.count;
  }

  private fold(items: ItemBuffer, sign: 1 | -1): void {
    const need = items.count * 16;
    if (this.scratch.length < need) this.scratch = new Uint8Array(Math.max(need, this.scratch.length * 2));
    const out = hashSegments128(items.bytes.subarray(0, items.count * ITEM_SIZE), ITEM_SIZE, this.scratch.subarray(0, need));
    const words = new DataView(out.buffer, out.byteOffset, need);
    const s = this.sum;
    for (let i = 0; i < need; i += 16) {
      // 128-bit add or subtract, four 32-bit limbs with carry/borrow.
      let carry = 0;
      for (let limb = 0; limb < 4; limb++) {
        const w = words.getUint32(i + 12 - limb * 4, false);
        const v = sign > 0 ? s[limb]! + w + carry : s[limb]! - w - carry;
        if (sign > 0) {
          carry = v > 0xffffffff ? 1 : 0;
        } else {
          carry = v < 0 ? 1 : 0;
        }
        s[limb] = v >>> 0;
      }
    }
  }

  /** The ID: a hash of the block size, entry count and sum, as 32 hex digits. */
  id(blockSize: number): string {
    const b = new Uint8Array(8 + 4 + 8 + 16);
    const v = new DataView(b.buffer);
    b.set(new TextEncoder().encode('SDCID001'));
    v.setUint32(8, blockSize, true);
    v.setUint32(12, this.entries % 2 ** 32, true);
    v.setUint32(16, Math.floor(this.entries / 2 ** 32), true);
    for (let i = 0; i < 4; i++) v.setUint32(20 + i * 4, this.sum[i]!, true);
    return Array.from(xxh3_128(b), (x) => x.toString(16).padStart(2, '0')).join('');
  }
}
