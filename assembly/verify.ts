// Verify-on-read: hash a run of blocks and compare each with its stored XXH3-128 in one call.
import { hash128, storeCanonical128 } from './xxh3';

const GOT: usize = memory.data(16, 16);

/**
 * For each `bs`-byte block i of [p, p+len) (the last may be short), compares its canonical
 * XXH3-128 with the 16 bytes at expected + 16*i. Returns the index of the first block that
 * differs, or -1 when every block matches.
 */
export function verify_blocks(p: usize, len: usize, bs: usize, expected: usize): i32 {
  let i: usize = 0;
  for (let o: usize = 0; o < len; o += bs) {
    hash128(p + o, min(bs, len - o), 0);
    storeCanonical128(GOT);
    if (!i8x16.all_true(i8x16.eq(v128.load(GOT), v128.load(expected + (i << 4))))) return <i32>i;
    i++;
  }
  return -1;
}
