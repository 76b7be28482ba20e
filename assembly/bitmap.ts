// Bitmap page kernels. A page is 65536 bits (8 KiB, 2048 u32 words, little-endian bit order:
// bit i is bit (i & 31) of word i >> 5). Ranges are [from, to) bit indices inside one page,
// 0 <= from < to <= 65536; src/wasm/bitmap.ts splits larger ranges by page and validates.

// @ts-ignore: decorator
@inline export const PAGE_BITS: u32 = 65536;
// @ts-ignore: decorator
@inline export const PAGE_BYTES: usize = 8192;

/** A page of zeros, passed for absent pages. */
export const ZERO_PAGE: usize = memory.data(8192, 16);

export function zero_page(): usize {
  return ZERO_PAGE;
}

// @ts-ignore: decorator
@inline function headMask(from: u32): u32 { return <u32>-1 << (from & 31); }
// @ts-ignore: decorator
@inline function tailMask(to: u32): u32 { return <u32>-1 >>> ((32 - (to & 31)) & 31); }

/** Sets bits [from, to). */
export function bits_set(page: usize, from: u32, to: u32): void {
  const fw = from >>> 5, lw = (to - 1) >>> 5;
  const hm = headMask(from), tm = tailMask(to);
  if (fw == lw) {
    const p = page + (<usize>fw << 2);
    store<u32>(p, load<u32>(p) | (hm & tm));
    return;
  }
  const pf = page + (<usize>fw << 2), pl = page + (<usize>lw << 2);
  store<u32>(pf, load<u32>(pf) | hm);
  memory.fill(pf + 4, 0xFF, pl - pf - 4);
  store<u32>(pl, load<u32>(pl) | tm);
}

/** Clears bits [from, to). */
export function bits_clear(page: usize, from: u32, to: u32): void {
  const fw = from >>> 5, lw = (to - 1) >>> 5;
  const hm = headMask(from), tm = tailMask(to);
  if (fw == lw) {
    const p = page + (<usize>fw << 2);
    store<u32>(p, load<u32>(p) & ~(hm & tm));
    return;
  }
  const pf = page + (<usize>fw << 2), pl = page + (<usize>lw << 2);
  store<u32>(pf, load<u32>(pf) & ~hm);
  memory.fill(pf + 4, 0, pl - pf - 4);
  store<u32>(pl, load<u32>(pl) & ~tm);
}

/** Number of set bits in [from, to). */
export function bits_count(page: usize, from: u32, to: u32): u32 {
  const fw = from >>> 5, lw = (to - 1) >>> 5;
  const hm = headMask(from), tm = tailMask(to);
  if (fw == lw) return popcnt<u32>(load<u32>(page + (<usize>fw << 2)) & hm & tm);
  let n = popcnt<u32>(load<u32>(page + (<usize>fw << 2)) & hm) + popcnt<u32>(load<u32>(page + (<usize>lw << 2)) & tm);
  let w = fw + 1;
  while (w + 2 <= lw) {
    n += <u32>popcnt<u64>(load<u64>(page + (<usize>w << 2)));
    w += 2;
  }
  while (w < lw) {
    n += popcnt<u32>(load<u32>(page + (<usize>w << 2)));
    w++;
  }
  return n;
}

/** First bit in [from, to) equal to `want` (0 or 1), or -1. */
function nextBit(page: usize, from: u32, to: u32, flip: u32): i32 {
  const fw = from >>> 5, lw = (to - 1) >>> 5;
  let w = fw;
  let x = (load<u32>(page + (<usize>w << 2)) ^ flip) & headMask(from);
  while (true) {
    if (w == lw) x &= tailMask(to);
    if (x != 0) return <i32>((w << 5) + ctz<u32>(x));
    if (w == lw) return -1;
    w++;
    // Skip whole 64-bit words of no interest when aligned.
    if ((w & 1) == 0) {
      const flip64: u64 = flip == 0 ? 0 : <u64>-1;
      while (w + 2 <= lw && (load<u64>(page + (<usize>w << 2)) ^ flip64) == 0) w += 2;
    }
    x = load<u32>(page + (<usize>w << 2)) ^ flip;
  }
}

export function bits_next_set(page: usize, from: u32, to: u32): i32 {
  return nextBit(page, from, to, 0);
}

export function bits_next_clear(page: usize, from: u32, to: u32): i32 {
  return nextBit(page, from, to, <u32>-1);
}

// @ts-ignore: decorator
@inline function combine(d: u32, s: u32, op: u32, mask: u32): u32 {
  let r: u32;
  if (op == 0) r = d | s;
  else if (op == 1) r = d & s;
  else r = d & ~s;
  return (r & mask) | (d & ~mask);
}

/** dst = dst OP src over [from, to); op 0 = or, 1 = and, 2 = and-not. */
export function bits_op(dst: usize, src: usize, from: u32, to: u32, op: u32): void {
  const fw = from >>> 5, lw = (to - 1) >>> 5;
  const hm = headMask(from), tm = tailMask(to);
  if (fw == lw) {
    const p = dst + (<usize>fw << 2);
    store<u32>(p, combine(load<u32>(p), load<u32>(src + (<usize>fw << 2)), op, hm & tm));
    return;
  }
  let p = dst + (<usize>fw << 2), q = src + (<usize>fw << 2);
  store<u32>(p, combine(load<u32>(p), load<u32>(q), op, hm));
  p += 4; q += 4;
  const end = dst + (<usize>lw << 2);
  if (op == 0) {
    while (p + 16 <= end) { v128.store(p, v128.or(v128.load(p), v128.load(q))); p += 16; q += 16; }
    while (p < end) { store<u32>(p, load<u32>(p) | load<u32>(q)); p += 4; q += 4; }
  } else if (op == 1) {
    while (p + 16 <= end) { v128.store(p, v128.and(v128.load(p), v128.load(q))); p += 16; q += 16; }
    while (p < end) { store<u32>(p, load<u32>(p) & load<u32>(q)); p += 4; q += 4; }
  } else {
    while (p + 16 <= end) { v128.store(p, v128.andnot(v128.load(p), v128.load(q))); p += 16; q += 16; }
    while (p < end) { store<u32>(p, load<u32>(p) & ~load<u32>(q)); p += 4; q += 4; }
  }
  store<u32>(end, combine(load<u32>(end), load<u32>(src + (<usize>lw << 2)), op, tm));
}

// ---------------------------------------------------------------------------------------------
// Resolve: which layer owns each block. `table` holds `n` (pagePtr: u32, layerIndex: u32) pairs,
// topmost first, for the layers whose page is present; absent layers are simply left out.

/** MASKS + 16*b: eight u16 lanes, lane j all-ones when bit j of byte b is set (built on first use). */
const MASKS: usize = memory.data(4096, 16);
let masksReady = false;

function buildMasks(): void {
  for (let b: u32 = 0; b < 256; b++) {
    for (let j: u32 = 0; j < 8; j++) store<u16>(MASKS + (<usize>b << 4) + (<usize>j << 1), ((b >>> j) & 1) != 0 ? 0xFFFF : 0);
  }
  masksReady = true;
}

// @ts-ignore: decorator
@inline function laneMask(bits: u32): v128 {
  return v128.load(MASKS + (<usize>(bits & 0xFF) << 4));
}

/** Owner of bit `b` (scalar path for the ragged edges of a range). */
function ownerOf(table: usize, n: u32, b: u32): u16 {
  for (let l: u32 = 0; l < n; l++) {
    const e = table + (<usize>l << 3);
    if ((load<u32>(<usize>load<u32>(e) + (<usize>(b >>> 5) << 2)) >>> (b & 31)) & 1) return <u16>load<u32>(e, 4);
  }
  return 0xFFFF;
}

// @ts-ignore: decorator
@inline function fill32(out: usize, v: v128): void {
  v128.store(out, v); v128.store(out, v, 16); v128.store(out, v, 32); v128.store(out, v, 48);
}

/** Owners of the 32 bits of word `w`, written as 32 u16 at `out`. */
function resolveWord(table: usize, n: u32, w: u32, out: usize): void {
  const wo = <usize>w << 2;
  // Walk down the layers until every bit has an owner; `low` is the lowest layer still visible.
  let rem: u32 = <u32>-1;
  let low: i32 = -1;
  let single = true;  // so far, one layer owns all bits seen
  for (let k: u32 = 0; k < n; k++) {
    const x = load<u32>(<usize>load<u32>(table + (<usize>k << 3)) + wo);
    if (x == 0) continue;
    if ((x & rem) != rem) single = false;
    if (single && (x & rem) == rem) { low = <i32>k; rem = 0; break; }
    rem &= ~x;
    low = <i32>k;
    if (rem == 0) break;
  }
  if (single) {
    // One owner for the whole word (or none): four splat stores.
    fill32(out, i16x8.splat(low < 0 ? <i16>-1 : <i16>load<u32>(table + (<usize>low << 3), 4)));
    return;
  }
  // Bottom-up select from the lowest visible layer, so the topmost owner is written last and wins.
  let start = low;
  let base = i16x8.splat(-1);
  if (rem == 0) {
    const e = table + (<usize>low << 3);
    // The lowest visible layer owns every bit not taken above it: start from its splat.
    base = i16x8.splat(<i16>load<u32>(e, 4));
    start = low - 1;
  }
  let r0 = base, r1 = base, r2 = base, r3 = base;
  for (let k = start; k >= 0; k--) {
    const e = table + (<usize>k << 3);
    const x = load<u32>(<usize>load<u32>(e) + wo);
    if (x == 0) continue;
    const v = i16x8.splat(<i16>load<u32>(e, 4));
    r0 = v128.bitselect(v, r0, laneMask(x));
    r1 = v128.bitselect(v, r1, laneMask(x >>> 8));
    r2 = v128.bitselect(v, r2, laneMask(x >>> 16));
    r3 = v128.bitselect(v, r3, laneMask(x >>> 24));
  }
  v128.store(out, r0); v128.store(out, r1, 16); v128.store(out, r2, 32); v128.store(out, r3, 48);
}

/** Owners of 128 bits from word `w` (a multiple of 4): one v128 per layer decides the common uniform case. */
function resolve128(table: usize, n: u32, w: u32, out: usize): void {
  const wo = <usize>w << 2;
  let k: u32 = 0;
  for (; k < n; k++) {
    const x = v128.load(<usize>load<u32>(table + (<usize>k << 3)) + wo);
    if (!v128.any_true(x)) continue;
    if (!v128.any_true(v128.not(x))) break;
    // Mixed: word by word.
    resolveWord(table, n, w, out);
    resolveWord(table, n, w + 1, out + 64);
    resolveWord(table, n, w + 2, out + 128);
    resolveWord(table, n, w + 3, out + 192);
    return;
  }
  const v = i16x8.splat(k < n ? <i16>load<u32>(table + (<usize>k << 3), 4) : <i16>-1);
  fill32(out, v); fill32(out + 64, v); fill32(out + 128, v); fill32(out + 192, v);
}

/** out[i] (u16) = owner of bit from + i, for i in [0, to - from); 0xFFFF where no layer has the bit. */
export function resolve_page(table: usize, n: u32, from: u32, to: u32, out: usize): void {
  if (!masksReady) buildMasks();
  let b = from;
  // Ragged head up to a word boundary, words up to a 128-bit boundary, then 128 bits at a time.
  while (b < to && (b & 31) != 0) { store<u16>(out + (<usize>(b - from) << 1), ownerOf(table, n, b)); b++; }
  const wordsEnd = to & ~31, chunksEnd = to & ~127;
  while (b < wordsEnd && (b & 127) != 0) {
    resolveWord(table, n, b >>> 5, out + (<usize>(b - from) << 1));
    b += 32;
  }
  while (b < chunksEnd) {
    resolve128(table, n, b >>> 5, out + (<usize>(b - from) << 1));
    b += 128;
  }
  while (b < wordsEnd) {
    resolveWord(table, n, b >>> 5, out + (<usize>(b - from) << 1));
    b += 32;
  }
  while (b < to) { store<u16>(out + (<usize>(b - from) << 1), ownerOf(table, n, b)); b++; }
}

/**
 * Like resolve_page, then run-length encodes the owners into u32 triples
 * [start (relative to from), length, owner] at `runs`; returns the number of runs.
 * `tmp` receives the per-bit owners (2 * (to - from) bytes).
 */
export function resolve_runs_page(table: usize, n: u32, from: u32, to: u32, tmp: usize, runs: usize): u32 {
  resolve_page(table, n, from, to, tmp);
  const count = to - from;
  let nr: u32 = 0;
  let i: u32 = 0;
  while (i < count) {
    const v = load<u16>(tmp + (<usize>i << 1));
    const vs = i16x8.splat(<i16>v);
    let j = i + 1;
    while (true) {
      if (j + 8 <= count) {
        const m = i16x8.bitmask(i16x8.ne(v128.load(tmp + (<usize>j << 1)), vs));
        if (m == 0) { j += 8; continue; }
        j += ctz<u32>(<u32>m);
        break;
      }
      while (j < count && load<u16>(tmp + (<usize>j << 1)) == v) j++;
      break;
    }
    const r = runs + <usize>nr * 12;
    store<u32>(r, i); store<u32>(r, j - i, 4); store<u32>(r, <u32>v, 8);
    nr++;
    i = j;
  }
  return nr;
}
