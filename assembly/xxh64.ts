// Classic XXH64, written from the xxHash specification. Scalar: its four lanes need full
// 64-bit multiplies, which WebAssembly SIMD only emulates.

// @ts-ignore: decorator
@inline const P1: u64 = 0x9E3779B185EBCA87;
// @ts-ignore: decorator
@inline const P2: u64 = 0xC2B2AE3D27D4EB4F;
// @ts-ignore: decorator
@inline const P3: u64 = 0x165667B19E3779F9;
// @ts-ignore: decorator
@inline const P4: u64 = 0x85EBCA77C2B2AE63;
// @ts-ignore: decorator
@inline const P5: u64 = 0x27D4EB2F165667C5;

/** Streaming state: four lane accumulators. */
const STATE: usize = memory.data(32, 16);

// @ts-ignore: decorator
@inline function round(acc: u64, lane: u64): u64 {
  return rotl<u64>(acc + lane * P2, 31) * P1;
}

// @ts-ignore: decorator
@inline function merge(acc: u64, v: u64): u64 {
  return (acc ^ round(0, v)) * P1 + P4;
}

/** Consumes `stripes` 32-byte stripes at p into the state. */
function stripesInto(p: usize, stripes: usize): void {
  let v1 = load<u64>(STATE), v2 = load<u64>(STATE, 8), v3 = load<u64>(STATE, 16), v4 = load<u64>(STATE, 24);
  const end = p + (stripes << 5);
  while (p < end) {
    v1 = round(v1, load<u64>(p));
    v2 = round(v2, load<u64>(p, 8));
    v3 = round(v3, load<u64>(p, 16));
    v4 = round(v4, load<u64>(p, 24));
    p += 32;
  }
  store<u64>(STATE, v1); store<u64>(STATE, v2, 8); store<u64>(STATE, v3, 16); store<u64>(STATE, v4, 24);
}

function begin(seed: u64): void {
  store<u64>(STATE, seed + P1 + P2);
  store<u64>(STATE, seed + P2, 8);
  store<u64>(STATE, seed, 16);
  store<u64>(STATE, seed - P1, 24);
}

/** Tail (< 32 bytes at p) and avalanche. `striped` says whether any stripe was consumed. */
function finish(p: usize, tail: usize, total: u64, seed: u64, striped: bool): u64 {
  let acc: u64;
  if (striped) {
    const v1 = load<u64>(STATE), v2 = load<u64>(STATE, 8), v3 = load<u64>(STATE, 16), v4 = load<u64>(STATE, 24);
    acc = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
    acc = merge(acc, v1);
    acc = merge(acc, v2);
    acc = merge(acc, v3);
    acc = merge(acc, v4);
  } else {
    acc = seed + P5;
  }
  acc += total;
  const end = p + tail;
  while (p + 8 <= end) {
    acc ^= round(0, load<u64>(p));
    acc = rotl<u64>(acc, 27) * P1 + P4;
    p += 8;
  }
  if (p + 4 <= end) {
    acc ^= <u64>load<u32>(p) * P1;
    acc = rotl<u64>(acc, 23) * P2 + P3;
    p += 4;
  }
  while (p < end) {
    acc ^= <u64>load<u8>(p) * P5;
    acc = rotl<u64>(acc, 11) * P1;
    p++;
  }
  acc ^= acc >> 33;
  acc *= P2;
  acc ^= acc >> 29;
  acc *= P3;
  return acc ^ (acc >> 32);
}

/** XXH64 of [p, p+len). */
export function xxh64(p: usize, len: usize, seed: u64): u64 {
  begin(seed);
  const stripes = len >> 5;
  stripesInto(p, stripes);
  return finish(p + (stripes << 5), len & 31, <u64>len, seed, stripes > 0);
}

/** Streaming: begin(seed); stripes(p, n) with whole 32-byte stripes; end(tail, tailLen, total, seed). */
export function xxh64_stream_begin(seed: u64): void {
  begin(seed);
}

export function xxh64_stream_stripes(p: usize, stripes: usize): void {
  stripesInto(p, stripes);
}

export function xxh64_stream_end(p: usize, tail: usize, total: u64, seed: u64): u64 {
  return finish(p, tail, total, seed, total >= 32);
}
