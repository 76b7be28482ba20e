// Byte kernels: scatter/gather copy, zero detection, block comparison.

/**
 * Copies runs [dstOff, srcOff, len] (u32 triples at `runs`) from src to dst with memory.copy.
 * Every run is checked against both buffers before anything is copied; returns -1 when all
 * runs were copied, else the index of the first run out of bounds (nothing copied).
 */
export function copy_runs(dst: usize, dstSize: usize, src: usize, srcSize: usize, runs: usize, count: usize): i32 {
  for (let i: usize = 0; i < count; i++) {
    const r = runs + i * 12;
    const d = <u64>load<u32>(r), s = <u64>load<u32>(r, 4), n = <u64>load<u32>(r, 8);
    if (d + n > <u64>dstSize || s + n > <u64>srcSize) return <i32>i;
  }
  for (let i: usize = 0; i < count; i++) {
    const r = runs + i * 12;
    memory.copy(dst + load<u32>(r), src + load<u32>(r, 4), load<u32>(r, 8));
  }
  return -1;
}

/** True when [p, p+len) holds only zero bytes; stops at the first 256-byte group with a nonzero byte. */
export function is_zero(p: usize, len: usize): bool {
  const end = p + len;
  // Unaligned head: bytes until p is 16-byte aligned.
  while ((p & 15) != 0 && p < end) {
    if (load<u8>(p) != 0) return false;
    p++;
  }
  while (p + 256 <= end) {
    let x = v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48)));
    x = v128.or(x, v128.or(v128.or(v128.load(p, 64), v128.load(p, 80)), v128.or(v128.load(p, 96), v128.load(p, 112))));
    x = v128.or(x, v128.or(v128.or(v128.load(p, 128), v128.load(p, 144)), v128.or(v128.load(p, 160), v128.load(p, 176))));
    x = v128.or(x, v128.or(v128.or(v128.load(p, 192), v128.load(p, 208)), v128.or(v128.load(p, 224), v128.load(p, 240))));
    if (v128.any_true(x)) return false;
    p += 256;
  }
  while (p + 16 <= end) {
    if (v128.any_true(v128.load(p))) return false;
    p += 16;
  }
  while (p < end) {
    if (load<u8>(p) != 0) return false;
    p++;
  }
  return true;
}

/** True when [a, a+len) and [b, b+len) hold the same bytes. */
export function equal_bytes(a: usize, b: usize, len: usize): bool {
  let i: usize = 0;
  while (i + 64 <= len) {
    let x = v128.or(v128.xor(v128.load(a + i), v128.load(b + i)), v128.xor(v128.load(a + i, 16), v128.load(b + i, 16)));
    x = v128.or(x, v128.or(v128.xor(v128.load(a + i, 32), v128.load(b + i, 32)), v128.xor(v128.load(a + i, 48), v128.load(b + i, 48))));
    if (v128.any_true(x)) return false;
    i += 64;
  }
  while (i + 8 <= len) {
    if (load<u64>(a + i) != load<u64>(b + i)) return false;
    i += 8;
  }
  while (i < len) {
    if (load<u8>(a + i) != load<u8>(b + i)) return false;
    i++;
  }
  return true;
}

/** out[i] = 1 when block i of a equals block i of b (len is a multiple of bs, or the last block is short). */
export function equal_blocks(a: usize, b: usize, len: usize, bs: usize, out: usize): void {
  let i: usize = 0;
  for (let o: usize = 0; o < len; o += bs) {
    store<u8>(out + i++, equal_bytes(a + o, b + o, min(bs, len - o)) ? 1 : 0);
  }
}
