// XXH3-64 and XXH3-128, written from the xxHash specification (doc/xxhash_spec.md, Cyan4973/xxHash).
// The long-input loop (> 240 bytes) keeps the eight 64-bit accumulators in four v128 registers.
// All entry points take a pointer and a length into linear memory; callers in src/wasm/ validate.

// @ts-ignore: decorator
@inline const P32_1: u64 = 0x9E3779B1;
// @ts-ignore: decorator
@inline const P32_2: u64 = 0x85EBCA77;
// @ts-ignore: decorator
@inline const P32_3: u64 = 0xC2B2AE3D;
// @ts-ignore: decorator
@inline const P64_1: u64 = 0x9E3779B185EBCA87;
// @ts-ignore: decorator
@inline const P64_2: u64 = 0xC2B2AE3D27D4EB4F;
// @ts-ignore: decorator
@inline const P64_3: u64 = 0x165667B19E3779F9;
// @ts-ignore: decorator
@inline const P64_4: u64 = 0x85EBCA77C2B2AE63;
// @ts-ignore: decorator
@inline const P64_5: u64 = 0x27D4EB2F165667C5;
// @ts-ignore: decorator
@inline const PMX1: u64 = 0x165667919E3779F9;
// @ts-ignore: decorator
@inline const PMX2: u64 = 0x9FB21C651E98DF25;

// @ts-ignore: decorator
@inline const SECRET_LEN: usize = 192;
// @ts-ignore: decorator
@inline const STRIPES_PER_BLOCK: usize = 16; // (192 - 64) / 8
// @ts-ignore: decorator
@inline export const XXH3_BLOCK: usize = 1024;

/** The default 192-byte secret from the specification. */
const DEFAULT_SECRET: usize = memory.data<u8>([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
  0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
  0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
  0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
  0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
  0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
  0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
  0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
  0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
  0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
  0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
  0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
], 16);

/** Secret derived from a nonzero seed (long inputs only); rebuilt when the seed changes. */
const DERIVED_SECRET: usize = memory.data(192, 16);
let derivedSeed: u64 = 0;

/** Streaming state: eight accumulators, and the secret in use. */
const STATE: usize = memory.data(64, 16);
let streamSecret: usize = DEFAULT_SECRET;

/** 16-byte result slot for 128-bit hashes: low64 at +0, high64 at +8 (little-endian words). */
export const HASH_OUT: usize = memory.data(16, 16);

let mulHi: u64 = 0;

/** Full 64x64 -> 128 multiply; returns the low half, leaves the high half in `mulHi`. */
// @ts-ignore: decorator
@inline function mul128(a: u64, b: u64): u64 {
  const aL = a & 0xFFFFFFFF, aH = a >> 32, bL = b & 0xFFFFFFFF, bH = b >> 32;
  const ll = aL * bL, lh = aL * bH, hl = aH * bL, hh = aH * bH;
  const cross = (ll >> 32) + (lh & 0xFFFFFFFF) + hl;
  mulHi = hh + (lh >> 32) + (cross >> 32);
  return (cross << 32) | (ll & 0xFFFFFFFF);
}

// @ts-ignore: decorator
@inline function fold64(a: u64, b: u64): u64 {
  const lo = mul128(a, b);
  return lo ^ mulHi;
}

// @ts-ignore: decorator
@inline function avalanche(x: u64): u64 {
  x ^= x >> 37;
  x *= PMX1;
  return x ^ (x >> 32);
}

// @ts-ignore: decorator
@inline function avalancheXXH64(x: u64): u64 {
  x ^= x >> 33;
  x *= P64_2;
  x ^= x >> 29;
  x *= P64_3;
  return x ^ (x >> 32);
}

// @ts-ignore: decorator
@inline function r64(p: usize): u64 { return load<u64>(p); }
// @ts-ignore: decorator
@inline function r32(p: usize): u64 { return <u64>load<u32>(p); }

function secretFor(seed: u64): usize {
  if (seed == 0) return DEFAULT_SECRET;
  if (seed != derivedSeed) {
    for (let i: usize = 0; i < 24; i += 2) {
      store<u64>(DERIVED_SECRET + i * 8, r64(DEFAULT_SECRET + i * 8) + seed);
      store<u64>(DERIVED_SECRET + i * 8 + 8, r64(DEFAULT_SECRET + i * 8 + 8) - seed);
    }
    derivedSeed = seed;
  }
  return DERIVED_SECRET;
}

// ---------------------------------------------------------------------------------------------
// 0..16 bytes

function small64(p: usize, len: usize, seed: u64): u64 {
  const s = DEFAULT_SECRET;
  if (len > 8) {
    const lo = ((r64(s + 24) ^ r64(s + 32)) + seed) ^ r64(p);
    const hi = ((r64(s + 40) ^ r64(s + 48)) - seed) ^ r64(p + len - 8);
    return avalanche(<u64>len + bswap<u64>(lo) + hi + fold64(lo, hi));
  }
  if (len >= 4) {
    const ms = seed ^ (<u64>bswap<u32>(<u32>seed) << 32);
    const combined = r32(p + len - 4) | (r32(p) << 32);
    let v = ((r64(s + 8) ^ r64(s + 16)) - ms) ^ combined;
    v ^= rotl<u64>(v, 49) ^ rotl<u64>(v, 24);
    v *= PMX2;
    v ^= (v >> 35) + <u64>len;
    v *= PMX2;
    return v ^ (v >> 28);
  }
  if (len > 0) {
    const c = <u64>(<u32>load<u8>(p + len - 1) | (<u32>len << 8) | (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p + (len >> 1)) << 24));
    return avalancheXXH64(((r32(s) ^ r32(s + 4)) + seed) ^ c);
  }
  return avalancheXXH64(seed ^ r64(s + 56) ^ r64(s + 64));
}

/** Writes low64/high64 to HASH_OUT. */
function small128(p: usize, len: usize, seed: u64): void {
  const s = DEFAULT_SECRET;
  let lo: u64, hi: u64;
  if (len > 8) {
    const first = r64(p), last = r64(p + len - 8);
    const v1 = ((r64(s + 32) ^ r64(s + 40)) - seed) ^ first ^ last;
    const v2 = ((r64(s + 48) ^ r64(s + 56)) + seed) ^ last;
    let l = mul128(v1, P64_1);
    let h = mulHi;
    l += <u64>(len - 1) << 54;
    h += v2 + (v2 & 0xFFFFFFFF) * (P32_2 - 1);
    l ^= bswap<u64>(h);
    const l2 = mul128(l, P64_2);
    const h2 = mulHi + h * P64_2;
    lo = avalanche(l2);
    hi = avalanche(h2);
  } else if (len >= 4) {
    const ms = seed ^ (<u64>bswap<u32>(<u32>seed) << 32);
    const combined = r32(p) | (r32(p + len - 4) << 32);
    const v = ((r64(s + 16) ^ r64(s + 24)) + ms) ^ combined;
    let l = mul128(v, P64_1 + (<u64>len << 2));
    let h = mulHi;
    h += l << 1;
    l ^= h >> 3;
    l ^= l >> 35;
    l *= PMX2;
    l ^= l >> 28;
    lo = l;
    hi = avalanche(h);
  } else if (len > 0) {
    const c32 = <u32>load<u8>(p + len - 1) | (<u32>len << 8) | (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p + (len >> 1)) << 24);
    lo = avalancheXXH64(((r32(s) ^ r32(s + 4)) + seed) ^ <u64>c32);
    hi = avalancheXXH64(((r32(s + 8) ^ r32(s + 12)) - seed) ^ <u64>rotl<u32>(bswap<u32>(c32), 13));
  } else {
    lo = avalancheXXH64(seed ^ r64(s + 64) ^ r64(s + 72));
    hi = avalancheXXH64(seed ^ r64(s + 80) ^ r64(s + 88));
  }
  store<u64>(HASH_OUT, lo);
  store<u64>(HASH_OUT + 8, hi);
}

// ---------------------------------------------------------------------------------------------
// 17..240 bytes

// @ts-ignore: decorator
@inline function mix16(p: usize, s: usize, seed: u64): u64 {
  return fold64(r64(p) ^ (r64(s) + seed), r64(p + 8) ^ (r64(s + 8) - seed));
}

function medium64(p: usize, len: usize, seed: u64): u64 {
  const s = DEFAULT_SECRET;
  let acc = <u64>len * P64_1;
  if (len <= 128) {
    let i = <isize>((len - 1) >> 5);
    for (; i >= 0; i--) {
      const o = <usize>i;
      acc += mix16(p + o * 16, s + o * 32, seed);
      acc += mix16(p + len - o * 16 - 16, s + o * 32 + 16, seed);
    }
    return avalanche(acc);
  }
  const chunks = len >> 4;
  for (let i: usize = 0; i < 8; i++) acc += mix16(p + i * 16, s + i * 16, seed);
  acc = avalanche(acc);
  for (let i: usize = 8; i < chunks; i++) acc += mix16(p + i * 16, s + (i - 8) * 16 + 3, seed);
  acc += mix16(p + len - 16, s + 119, seed);
  return avalanche(acc);
}

let macc0: u64 = 0;
let macc1: u64 = 0;

// @ts-ignore: decorator
@inline function mixTwo(d1: usize, d2: usize, s: usize, seed: u64): void {
  macc0 += mix16(d1, s, seed);
  macc1 += mix16(d2, s + 16, seed);
  macc0 ^= r64(d2) + r64(d2 + 8);
  macc1 ^= r64(d1) + r64(d1 + 8);
}

function medium128(p: usize, len: usize, seed: u64): void {
  const s = DEFAULT_SECRET;
  macc0 = <u64>len * P64_1;
  macc1 = 0;
  if (len <= 128) {
    let i = <isize>((len - 1) >> 5);
    for (; i >= 0; i--) {
      const o = <usize>i;
      mixTwo(p + o * 16, p + len - o * 16 - 16, s + o * 32, seed);
    }
  } else {
    const chunks = len >> 5;
    for (let i: usize = 0; i < 4; i++) mixTwo(p + i * 32, p + i * 32 + 16, s + i * 32, seed);
    macc0 = avalanche(macc0);
    macc1 = avalanche(macc1);
    for (let i: usize = 4; i < chunks; i++) mixTwo(p + i * 32, p + i * 32 + 16, s + (i - 4) * 32 + 3, seed);
    mixTwo(p + len - 16, p + len - 32, s + 103, 0 - seed);
  }
  const lo = macc0 + macc1;
  const hi = macc0 * P64_1 + macc1 * P64_4 + (<u64>len - seed) * P64_2;
  store<u64>(HASH_OUT, avalanche(lo));
  store<u64>(HASH_OUT + 8, 0 - avalanche(hi));
}

// ---------------------------------------------------------------------------------------------
// > 240 bytes: stripes of 64 bytes, blocks of 16 stripes, accumulators in v128 registers

let acc0: v128 = i64x2.splat(0);
let acc1: v128 = i64x2.splat(0);
let acc2: v128 = i64x2.splat(0);
let acc3: v128 = i64x2.splat(0);

// @ts-ignore: decorator
@inline function scrambleOne(a: v128, s: v128): v128 {
  const x = v128.xor(v128.xor(a, i64x2.shr_u(a, 47)), s);
  return i64x2.mul(x, i64x2.splat(P32_1));
}

function initAcc(): void {
  acc0 = i64x2(<i64>P32_3, <i64>P64_1);
  acc1 = i64x2(<i64>P64_2, <i64>P64_3);
  acc2 = i64x2(<i64>P64_4, <i64>P32_2);
  acc3 = i64x2(<i64>P64_5, <i64>P32_1);
}

/**
 * Accumulates `n` stripes of 64 bytes at p, stripe i with the key at s + 8i, into acc0..acc3:
 * for each 64-bit word, acc[i ^ 1] += data[i] and acc[i] += lo32(data[i] ^ key[i]) *
 * hi32(data[i] ^ key[i]).
 *
 * Nothing nonlinear happens between scrambles, so the data words are summed unswapped (x0..x3)
 * and swapped into the accumulators once at the end: the same adds, but no shuffle per stripe
 * (measured 11% faster). The low and high 32-bit halves of two keyed words are gathered with
 * one shuffle each, so one extmul gives two 32x32->64 products. Everything stays in locals,
 * i.e. registers.
 */
function accumulate(p: usize, n: usize, s: usize): void {
  let a0 = acc0, a1 = acc1, a2 = acc2, a3 = acc3;
  let x0 = i64x2.splat(0), x1 = i64x2.splat(0), x2 = i64x2.splat(0), x3 = i64x2.splat(0);
  const end = p + n * 64;
  while (p < end) {
    const d0 = v128.load(p), d1 = v128.load(p, 16), d2 = v128.load(p, 32), d3 = v128.load(p, 48);
    const k0 = v128.xor(d0, v128.load(s)), k1 = v128.xor(d1, v128.load(s, 16));
    const k2 = v128.xor(d2, v128.load(s, 32)), k3 = v128.xor(d3, v128.load(s, 48));
    const lo01 = i32x4.shuffle(k0, k1, 0, 2, 4, 6), hi01 = i32x4.shuffle(k0, k1, 1, 3, 5, 7);
    const lo23 = i32x4.shuffle(k2, k3, 0, 2, 4, 6), hi23 = i32x4.shuffle(k2, k3, 1, 3, 5, 7);
    x0 = i64x2.add(x0, d0); x1 = i64x2.add(x1, d1); x2 = i64x2.add(x2, d2); x3 = i64x2.add(x3, d3);
    a0 = i64x2.add(a0, i64x2.extmul_low_i32x4_u(lo01, hi01));
    a1 = i64x2.add(a1, i64x2.extmul_high_i32x4_u(lo01, hi01));
    a2 = i64x2.add(a2, i64x2.extmul_low_i32x4_u(lo23, hi23));
    a3 = i64x2.add(a3, i64x2.extmul_high_i32x4_u(lo23, hi23));
    p += 64;
    s += 8;
  }
  acc0 = i64x2.add(a0, i64x2.shuffle(x0, x0, 1, 0));
  acc1 = i64x2.add(a1, i64x2.shuffle(x1, x1, 1, 0));
  acc2 = i64x2.add(a2, i64x2.shuffle(x2, x2, 1, 0));
  acc3 = i64x2.add(a3, i64x2.shuffle(x3, x3, 1, 0));
}

/** Full rounds: `blocks` blocks of 1024 bytes, each 16 accumulates then a scramble. */
function longBlocks(p: usize, blocks: usize, s: usize): void {
  const end = p + blocks * XXH3_BLOCK;
  while (p < end) {
    accumulate(p, STRIPES_PER_BLOCK, s);
    acc0 = scrambleOne(acc0, v128.load(s, 128));
    acc1 = scrambleOne(acc1, v128.load(s, 144));
    acc2 = scrambleOne(acc2, v128.load(s, 160));
    acc3 = scrambleOne(acc3, v128.load(s, 176));
    p += XXH3_BLOCK;
  }
}

/** Last block (1..1024 bytes at p) and the final stripe, which is the last 64 bytes of input (p + len - 64 may precede p). */
function longLast(p: usize, len: usize, s: usize): void {
  accumulate(p, (len - 1) >> 6, s);
  accumulate(p + len - 64, 1, s + SECRET_LEN - 71);
}

function mergeAcc(init: u64, s: usize): u64 {
  let r = init;
  r += fold64(i64x2.extract_lane(acc0, 0) ^ r64(s), i64x2.extract_lane(acc0, 1) ^ r64(s + 8));
  r += fold64(i64x2.extract_lane(acc1, 0) ^ r64(s + 16), i64x2.extract_lane(acc1, 1) ^ r64(s + 24));
  r += fold64(i64x2.extract_lane(acc2, 0) ^ r64(s + 32), i64x2.extract_lane(acc2, 1) ^ r64(s + 40));
  r += fold64(i64x2.extract_lane(acc3, 0) ^ r64(s + 48), i64x2.extract_lane(acc3, 1) ^ r64(s + 56));
  return avalanche(r);
}

function long64(p: usize, len: usize, seed: u64): u64 {
  const s = secretFor(seed);
  initAcc();
  const blocks = (len - 1) >> 10;
  longBlocks(p, blocks, s);
  longLast(p + blocks * XXH3_BLOCK, len - blocks * XXH3_BLOCK, s);
  return mergeAcc(<u64>len * P64_1, s + 11);
}

function long128(p: usize, len: usize, seed: u64): void {
  const s = secretFor(seed);
  initAcc();
  const blocks = (len - 1) >> 10;
  longBlocks(p, blocks, s);
  longLast(p + blocks * XXH3_BLOCK, len - blocks * XXH3_BLOCK, s);
  store<u64>(HASH_OUT, mergeAcc(<u64>len * P64_1, s + 11));
  store<u64>(HASH_OUT + 8, mergeAcc(~(<u64>len * P64_2), s + SECRET_LEN - 75));
}

// ---------------------------------------------------------------------------------------------
// Entry points used inside the module

export function hash64(p: usize, len: usize, seed: u64): u64 {
  if (len <= 16) return small64(p, len, seed);
  if (len <= 240) return medium64(p, len, seed);
  return long64(p, len, seed);
}

/** Writes the 128-bit hash to HASH_OUT (low64, high64). */
export function hash128(p: usize, len: usize, seed: u64): void {
  if (len <= 16) small128(p, len, seed);
  else if (len <= 240) medium128(p, len, seed);
  else long128(p, len, seed);
}

/** Stores HASH_OUT in canonical form (big-endian high64 then big-endian low64) at `out`. */
// @ts-ignore: decorator
@inline export function storeCanonical128(out: usize): void {
  store<u64>(out, bswap<u64>(load<u64>(HASH_OUT + 8)));
  store<u64>(out + 8, bswap<u64>(load<u64>(HASH_OUT)));
}

// ---------------------------------------------------------------------------------------------
// Exports

/** XXH3-64 of [p, p+len). */
export function xxh3_64(p: usize, len: usize, seed: u64): u64 {
  return hash64(p, len, seed);
}

/** XXH3-128 of [p, p+len), 16 canonical bytes written at `out`. */
export function xxh3_128(p: usize, len: usize, seed: u64, out: usize): void {
  hash128(p, len, seed);
  storeCanonical128(out);
}

/**
 * Streaming for inputs longer than 240 bytes that do not fit in memory at once.
 * begin(seed); blocks(p, n) any number of times with whole 1024-byte blocks;
 * end(p, lastLen, totalLen, out, wide) with the last 1..1024 bytes, where the 64 bytes before
 * p + lastLen must be readable (they may reach into the previous block).
 */
export function xxh3_stream_begin(seed: u64): void {
  streamSecret = secretFor(seed);
  initAcc();
  storeAcc();
}

function storeAcc(): void {
  v128.store(STATE, acc0); v128.store(STATE, acc1, 16); v128.store(STATE, acc2, 32); v128.store(STATE, acc3, 48);
}

function loadAcc(): void {
  acc0 = v128.load(STATE); acc1 = v128.load(STATE, 16); acc2 = v128.load(STATE, 32); acc3 = v128.load(STATE, 48);
}

export function xxh3_stream_blocks(p: usize, blocks: usize): void {
  loadAcc();
  longBlocks(p, blocks, streamSecret);
  storeAcc();
}

/** Finishes the stream; returns the 64-bit hash and, when `out` is nonzero, writes the canonical 128-bit hash there. */
export function xxh3_stream_end(p: usize, lastLen: usize, totalLen: u64, out: usize): u64 {
  loadAcc();
  const s = streamSecret;
  longLast(p, lastLen, s);
  const lo = mergeAcc(totalLen * P64_1, s + 11);
  if (out != 0) {
    store<u64>(HASH_OUT, lo);
    store<u64>(HASH_OUT + 8, mergeAcc(~(totalLen * P64_2), s + SECRET_LEN - 75));
    storeCanonical128(out);
  }
  return lo;
}

/** XXH3-64 of each `seg`-byte slice of [p, p+len) (the last may be short), as u64 at out + 8*i. */
export function xxh3_segments64(p: usize, len: usize, seg: usize, seed: u64, out: usize): void {
  let i: usize = 0;
  for (let o: usize = 0; o < len; o += seg) {
    const n = min(seg, len - o);
    store<u64>(out + (i++ << 3), hash64(p + o, n, seed));
  }
}

/** XXH3-128 of each `seg`-byte slice, 16 canonical bytes per slice at out + 16*i. */
export function xxh3_segments128(p: usize, len: usize, seg: usize, seed: u64, out: usize): void {
  let i: usize = 0;
  for (let o: usize = 0; o < len; o += seg) {
    const n = min(seg, len - o);
    hash128(p + o, n, seed);
    storeCanonical128(out + (i++ << 4));
  }
}
