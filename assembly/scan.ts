// One pass over a run of blocks: XXH3-128 of each block and an all-zero flag.
import { hash128, storeCanonical128 } from './xxh3';
import { is_zero } from './copy';

/** Canonical XXH3-128 of `zeroLen` zero bytes (all zero blocks of one size share a hash). */
const ZERO_HASH: usize = memory.data(16, 16);
let zeroLen: usize = 0;
let zeroKnown = false;

/**
 * For each `bs`-byte block of [p, p+len): 16 canonical hash bytes at hashes + 16*i and
 * zero[i] = 1 when the block is all zero bytes. A zero block reuses the cached zero hash.
 */
export function scan_blocks(p: usize, len: usize, bs: usize, hashes: usize, zero: usize): void {
  let i: usize = 0;
  for (let o: usize = 0; o < len; o += bs) {
    const q = p + o, n = min(bs, len - o), out = hashes + (i << 4);
    if (is_zero(q, n)) {
      store<u8>(zero + i, 1);
      if (!zeroKnown || zeroLen != n) {
        hash128(q, n, 0);
        storeCanonical128(ZERO_HASH);
        zeroLen = n;
        zeroKnown = true;
      }
      v128.store(out, v128.load(ZERO_HASH));
    } else {
      store<u8>(zero + i, 0);
      hash128(q, n, 0);
      storeCanonical128(out);
    }
    i++;
  }
}

