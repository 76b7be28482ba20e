// BLAKE3 (hash mode, 32-byte output), written from the BLAKE3 specification
// (BLAKE3-team/BLAKE3-specs, blake3.pdf): compression function, chunk chaining and the binary
// tree of parent nodes. No keyed or derive-key modes and no extended output: stratadisk uses
// BLAKE3 to name content-addressed chunks.
//
// Speed comes from hashing four 1-KiB chunks at once, one chunk per v128 lane: each of the 16
// state words is a v128 holding that word for four chunks, and the message words are transposed
// to match, so a round is plain lane-wise arithmetic with no shuffles. Parent nodes are hashed
// four at a time the same way: chaining values stay transposed in groups of four (8 v128 = 128
// bytes per group) from the chunk level up to the root. Batches of slices of one chunk or less
// (blake3_chunks) go four slices at a time, one per lane. A lone chunk (a short input, or the
// last, partial chunk of an input) and the final parents use a one-lane compression that keeps
// the state as four v128 rows.
//
// Inputs longer than SUBTREE_BYTES are cut into complete subtrees of SUBTREE_CHUNKS chunks whose
// chaining values go on a stack, merged as soon as a pair is complete; the last part (1 byte to
// SUBTREE_BYTES) is hashed as a subtree of its own and folded with the stack, the last parent
// carrying the ROOT flag. src/wasm/ stages inputs from JS memory through the same entry points.

// @ts-ignore: decorator
@inline const CHUNK_START: u32 = 1;
// @ts-ignore: decorator
@inline const CHUNK_END: u32 = 2;
// @ts-ignore: decorator
@inline const PARENT: u32 = 4;
// @ts-ignore: decorator
@inline const ROOT: u32 = 8;

// @ts-ignore: decorator
@inline const CHUNK: usize = 1024;
// @ts-ignore: decorator
@inline const BLOCK: usize = 64;
/** Chunks in a complete subtree hashed in one pass (a power of two); 2 MiB of input. */
// @ts-ignore: decorator
@inline const SUBTREE_CHUNKS: usize = 2048;
// @ts-ignore: decorator
@inline export const SUBTREE_BYTES: usize = SUBTREE_CHUNKS * CHUNK;

// The initialisation vector (the SHA-256 one), as lane-splats for the 4-lane compression.
// @ts-ignore: decorator
@inline const IV0: i32 = 0x6A09E667;
// @ts-ignore: decorator
@inline const IV1: i32 = <i32>0xBB67AE85;
// @ts-ignore: decorator
@inline const IV2: i32 = 0x3C6EF372;
// @ts-ignore: decorator
@inline const IV3: i32 = <i32>0xA54FF53A;
// @ts-ignore: decorator
@inline const IV4: i32 = 0x510E527F;
// @ts-ignore: decorator
@inline const IV5: i32 = <i32>0x9B05688C;
// @ts-ignore: decorator
@inline const IV6: i32 = 0x1F83D9AB;
// @ts-ignore: decorator
@inline const IV7: i32 = 0x5BE0CD19;

/**
 * The message schedule: the word indices each round uses, i.e. the permutation
 * [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8] applied r times. Stored per round in
 * the order the one-lane compression gathers them: the four column x-words, the four column
 * y-words, the four diagonal x-words, the four diagonal y-words.
 */
const SCHEDULE: usize = memory.data<u8>([
  0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15,
  2, 3, 7, 4, 6, 10, 0, 13, 1, 12, 9, 15, 11, 5, 14, 8,
  3, 10, 13, 7, 4, 12, 2, 14, 6, 9, 11, 8, 5, 0, 15, 1,
  10, 12, 14, 13, 7, 9, 3, 15, 4, 11, 5, 1, 0, 2, 8, 6,
  12, 9, 15, 14, 13, 11, 10, 8, 7, 5, 0, 6, 2, 3, 1, 4,
  9, 11, 8, 15, 14, 5, 12, 1, 13, 0, 2, 4, 3, 10, 6, 7,
  11, 5, 1, 8, 15, 0, 9, 6, 14, 2, 3, 7, 10, 12, 4, 13,
], 16);

/** Transposed chaining values of one subtree: SUBTREE_CHUNKS / 4 groups of 8 v128. */
const CVS: usize = memory.data(<i32>(SUBTREE_CHUNKS / 4 * 128), 16);
/** Transposed message of four blocks (16 v128). */
const MSG4: usize = memory.data(256, 16);
/** The IV as a transposed group (eight lane-splats). */
const IV_GROUP: usize = memory.data<i32>([
  IV0, IV0, IV0, IV0, IV1, IV1, IV1, IV1, IV2, IV2, IV2, IV2, IV3, IV3, IV3, IV3,
  IV4, IV4, IV4, IV4, IV5, IV5, IV5, IV5, IV6, IV6, IV6, IV6, IV7, IV7, IV7, IV7,
], 16);
/** The IV as one chaining value. */
const IV_CV: usize = memory.data<i32>([IV0, IV1, IV2, IV3, IV4, IV5, IV6, IV7], 16);
/** One chaining value (the one-lane path) and a zero-padded last block. */
const CV1: usize = memory.data(32, 16);
const PAD: usize = memory.data(64, 16);
/** Two chaining values side by side: the message of a parent node. */
const PAIR: usize = memory.data(64, 16);
/** Chaining values of complete subtrees (at most one per bit of the chunk counter). */
const STACK: usize = memory.data(64 * 32, 16);
let stackLen: usize = 0;
/** Complete subtrees hashed so far in the current stream. */
let subtrees: u64 = 0;

// ---------------------------------------------------------------------------------------------
// Lane-wise helpers

// @ts-ignore: decorator
@inline function rot16(x: v128): v128 {
  return i8x16.shuffle(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
}
// @ts-ignore: decorator
@inline function rot8(x: v128): v128 {
  return i8x16.shuffle(x, x, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
}
// @ts-ignore: decorator
@inline function rot12(x: v128): v128 {
  return v128.or(i32x4.shr_u(x, 12), i32x4.shl(x, 20));
}
// @ts-ignore: decorator
@inline function rot7(x: v128): v128 {
  return v128.or(i32x4.shr_u(x, 7), i32x4.shl(x, 25));
}
// @ts-ignore: decorator
@inline function add3(a: v128, b: v128, c: v128): v128 {
  return i32x4.add(i32x4.add(a, b), c);
}

// ---------------------------------------------------------------------------------------------
// Four compressions at once (one per lane)

/**
 * Compresses four blocks: chaining values `cvIn` (a transposed group), the transposed message
 * at MSG4, per-lane counters, block length and flags. Writes the four output chaining values
 * (transposed) to `cvOut`, which may equal `cvIn`.
 */
function compress4(cvIn: usize, ctrLo: v128, ctrHi: v128, blockLen: v128, flags: v128, cvOut: usize): void {
  let s0 = v128.load(cvIn), s1 = v128.load(cvIn, 16), s2 = v128.load(cvIn, 32), s3 = v128.load(cvIn, 48);
  let s4 = v128.load(cvIn, 64), s5 = v128.load(cvIn, 80), s6 = v128.load(cvIn, 96), s7 = v128.load(cvIn, 112);
  let s8 = i32x4.splat(IV0), s9 = i32x4.splat(IV1), s10 = i32x4.splat(IV2), s11 = i32x4.splat(IV3);
  let s12 = ctrLo, s13 = ctrHi, s14 = blockLen, s15 = flags;
  const m = MSG4;
  // Seven rounds, unrolled; each line is half of G(a, b, c, d, mx, my), columns then diagonals,
  // with the message words taken in the order of that round's schedule (see SCHEDULE). Message
  // words are loaded where they are used rather than held in locals: 16 state words already
  // fill the registers, and a load from MSG4 (in L1) is cheaper than a spill.
  // round 0
  s0 = add3(s0, s4, v128.load(m, 0)); s12 = rot16(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot12(v128.xor(s4, s8));
  s0 = add3(s0, s4, v128.load(m, 16)); s12 = rot8(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot7(v128.xor(s4, s8));
  s1 = add3(s1, s5, v128.load(m, 32)); s13 = rot16(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot12(v128.xor(s5, s9));
  s1 = add3(s1, s5, v128.load(m, 48)); s13 = rot8(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot7(v128.xor(s5, s9));
  s2 = add3(s2, s6, v128.load(m, 64)); s14 = rot16(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot12(v128.xor(s6, s10));
  s2 = add3(s2, s6, v128.load(m, 80)); s14 = rot8(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot7(v128.xor(s6, s10));
  s3 = add3(s3, s7, v128.load(m, 96)); s15 = rot16(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot12(v128.xor(s7, s11));
  s3 = add3(s3, s7, v128.load(m, 112)); s15 = rot8(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot7(v128.xor(s7, s11));
  s0 = add3(s0, s5, v128.load(m, 128)); s15 = rot16(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot12(v128.xor(s5, s10));
  s0 = add3(s0, s5, v128.load(m, 144)); s15 = rot8(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot7(v128.xor(s5, s10));
  s1 = add3(s1, s6, v128.load(m, 160)); s12 = rot16(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot12(v128.xor(s6, s11));
  s1 = add3(s1, s6, v128.load(m, 176)); s12 = rot8(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot7(v128.xor(s6, s11));
  s2 = add3(s2, s7, v128.load(m, 192)); s13 = rot16(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot12(v128.xor(s7, s8));
  s2 = add3(s2, s7, v128.load(m, 208)); s13 = rot8(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot7(v128.xor(s7, s8));
  s3 = add3(s3, s4, v128.load(m, 224)); s14 = rot16(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot12(v128.xor(s4, s9));
  s3 = add3(s3, s4, v128.load(m, 240)); s14 = rot8(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot7(v128.xor(s4, s9));
  // round 1
  s0 = add3(s0, s4, v128.load(m, 32)); s12 = rot16(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot12(v128.xor(s4, s8));
  s0 = add3(s0, s4, v128.load(m, 96)); s12 = rot8(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot7(v128.xor(s4, s8));
  s1 = add3(s1, s5, v128.load(m, 48)); s13 = rot16(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot12(v128.xor(s5, s9));
  s1 = add3(s1, s5, v128.load(m, 160)); s13 = rot8(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot7(v128.xor(s5, s9));
  s2 = add3(s2, s6, v128.load(m, 112)); s14 = rot16(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot12(v128.xor(s6, s10));
  s2 = add3(s2, s6, v128.load(m, 0)); s14 = rot8(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot7(v128.xor(s6, s10));
  s3 = add3(s3, s7, v128.load(m, 64)); s15 = rot16(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot12(v128.xor(s7, s11));
  s3 = add3(s3, s7, v128.load(m, 208)); s15 = rot8(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot7(v128.xor(s7, s11));
  s0 = add3(s0, s5, v128.load(m, 16)); s15 = rot16(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot12(v128.xor(s5, s10));
  s0 = add3(s0, s5, v128.load(m, 176)); s15 = rot8(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot7(v128.xor(s5, s10));
  s1 = add3(s1, s6, v128.load(m, 192)); s12 = rot16(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot12(v128.xor(s6, s11));
  s1 = add3(s1, s6, v128.load(m, 80)); s12 = rot8(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot7(v128.xor(s6, s11));
  s2 = add3(s2, s7, v128.load(m, 144)); s13 = rot16(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot12(v128.xor(s7, s8));
  s2 = add3(s2, s7, v128.load(m, 224)); s13 = rot8(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot7(v128.xor(s7, s8));
  s3 = add3(s3, s4, v128.load(m, 240)); s14 = rot16(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot12(v128.xor(s4, s9));
  s3 = add3(s3, s4, v128.load(m, 128)); s14 = rot8(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot7(v128.xor(s4, s9));
  // round 2
  s0 = add3(s0, s4, v128.load(m, 48)); s12 = rot16(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot12(v128.xor(s4, s8));
  s0 = add3(s0, s4, v128.load(m, 64)); s12 = rot8(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot7(v128.xor(s4, s8));
  s1 = add3(s1, s5, v128.load(m, 160)); s13 = rot16(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot12(v128.xor(s5, s9));
  s1 = add3(s1, s5, v128.load(m, 192)); s13 = rot8(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot7(v128.xor(s5, s9));
  s2 = add3(s2, s6, v128.load(m, 208)); s14 = rot16(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot12(v128.xor(s6, s10));
  s2 = add3(s2, s6, v128.load(m, 32)); s14 = rot8(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot7(v128.xor(s6, s10));
  s3 = add3(s3, s7, v128.load(m, 112)); s15 = rot16(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot12(v128.xor(s7, s11));
  s3 = add3(s3, s7, v128.load(m, 224)); s15 = rot8(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot7(v128.xor(s7, s11));
  s0 = add3(s0, s5, v128.load(m, 96)); s15 = rot16(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot12(v128.xor(s5, s10));
  s0 = add3(s0, s5, v128.load(m, 80)); s15 = rot8(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot7(v128.xor(s5, s10));
  s1 = add3(s1, s6, v128.load(m, 144)); s12 = rot16(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot12(v128.xor(s6, s11));
  s1 = add3(s1, s6, v128.load(m, 0)); s12 = rot8(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot7(v128.xor(s6, s11));
  s2 = add3(s2, s7, v128.load(m, 176)); s13 = rot16(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot12(v128.xor(s7, s8));
  s2 = add3(s2, s7, v128.load(m, 240)); s13 = rot8(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot7(v128.xor(s7, s8));
  s3 = add3(s3, s4, v128.load(m, 128)); s14 = rot16(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot12(v128.xor(s4, s9));
  s3 = add3(s3, s4, v128.load(m, 16)); s14 = rot8(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot7(v128.xor(s4, s9));
  // round 3
  s0 = add3(s0, s4, v128.load(m, 160)); s12 = rot16(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot12(v128.xor(s4, s8));
  s0 = add3(s0, s4, v128.load(m, 112)); s12 = rot8(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot7(v128.xor(s4, s8));
  s1 = add3(s1, s5, v128.load(m, 192)); s13 = rot16(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot12(v128.xor(s5, s9));
  s1 = add3(s1, s5, v128.load(m, 144)); s13 = rot8(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot7(v128.xor(s5, s9));
  s2 = add3(s2, s6, v128.load(m, 224)); s14 = rot16(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot12(v128.xor(s6, s10));
  s2 = add3(s2, s6, v128.load(m, 48)); s14 = rot8(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot7(v128.xor(s6, s10));
  s3 = add3(s3, s7, v128.load(m, 208)); s15 = rot16(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot12(v128.xor(s7, s11));
  s3 = add3(s3, s7, v128.load(m, 240)); s15 = rot8(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot7(v128.xor(s7, s11));
  s0 = add3(s0, s5, v128.load(m, 64)); s15 = rot16(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot12(v128.xor(s5, s10));
  s0 = add3(s0, s5, v128.load(m, 0)); s15 = rot8(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot7(v128.xor(s5, s10));
  s1 = add3(s1, s6, v128.load(m, 176)); s12 = rot16(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot12(v128.xor(s6, s11));
  s1 = add3(s1, s6, v128.load(m, 32)); s12 = rot8(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot7(v128.xor(s6, s11));
  s2 = add3(s2, s7, v128.load(m, 80)); s13 = rot16(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot12(v128.xor(s7, s8));
  s2 = add3(s2, s7, v128.load(m, 128)); s13 = rot8(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot7(v128.xor(s7, s8));
  s3 = add3(s3, s4, v128.load(m, 16)); s14 = rot16(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot12(v128.xor(s4, s9));
  s3 = add3(s3, s4, v128.load(m, 96)); s14 = rot8(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot7(v128.xor(s4, s9));
  // round 4
  s0 = add3(s0, s4, v128.load(m, 192)); s12 = rot16(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot12(v128.xor(s4, s8));
  s0 = add3(s0, s4, v128.load(m, 208)); s12 = rot8(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot7(v128.xor(s4, s8));
  s1 = add3(s1, s5, v128.load(m, 144)); s13 = rot16(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot12(v128.xor(s5, s9));
  s1 = add3(s1, s5, v128.load(m, 176)); s13 = rot8(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot7(v128.xor(s5, s9));
  s2 = add3(s2, s6, v128.load(m, 240)); s14 = rot16(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot12(v128.xor(s6, s10));
  s2 = add3(s2, s6, v128.load(m, 160)); s14 = rot8(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot7(v128.xor(s6, s10));
  s3 = add3(s3, s7, v128.load(m, 224)); s15 = rot16(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot12(v128.xor(s7, s11));
  s3 = add3(s3, s7, v128.load(m, 128)); s15 = rot8(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot7(v128.xor(s7, s11));
  s0 = add3(s0, s5, v128.load(m, 112)); s15 = rot16(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot12(v128.xor(s5, s10));
  s0 = add3(s0, s5, v128.load(m, 32)); s15 = rot8(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot7(v128.xor(s5, s10));
  s1 = add3(s1, s6, v128.load(m, 80)); s12 = rot16(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot12(v128.xor(s6, s11));
  s1 = add3(s1, s6, v128.load(m, 48)); s12 = rot8(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot7(v128.xor(s6, s11));
  s2 = add3(s2, s7, v128.load(m, 0)); s13 = rot16(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot12(v128.xor(s7, s8));
  s2 = add3(s2, s7, v128.load(m, 16)); s13 = rot8(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot7(v128.xor(s7, s8));
  s3 = add3(s3, s4, v128.load(m, 96)); s14 = rot16(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot12(v128.xor(s4, s9));
  s3 = add3(s3, s4, v128.load(m, 64)); s14 = rot8(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot7(v128.xor(s4, s9));
  // round 5
  s0 = add3(s0, s4, v128.load(m, 144)); s12 = rot16(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot12(v128.xor(s4, s8));
  s0 = add3(s0, s4, v128.load(m, 224)); s12 = rot8(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot7(v128.xor(s4, s8));
  s1 = add3(s1, s5, v128.load(m, 176)); s13 = rot16(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot12(v128.xor(s5, s9));
  s1 = add3(s1, s5, v128.load(m, 80)); s13 = rot8(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot7(v128.xor(s5, s9));
  s2 = add3(s2, s6, v128.load(m, 128)); s14 = rot16(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot12(v128.xor(s6, s10));
  s2 = add3(s2, s6, v128.load(m, 192)); s14 = rot8(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot7(v128.xor(s6, s10));
  s3 = add3(s3, s7, v128.load(m, 240)); s15 = rot16(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot12(v128.xor(s7, s11));
  s3 = add3(s3, s7, v128.load(m, 16)); s15 = rot8(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot7(v128.xor(s7, s11));
  s0 = add3(s0, s5, v128.load(m, 208)); s15 = rot16(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot12(v128.xor(s5, s10));
  s0 = add3(s0, s5, v128.load(m, 48)); s15 = rot8(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot7(v128.xor(s5, s10));
  s1 = add3(s1, s6, v128.load(m, 0)); s12 = rot16(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot12(v128.xor(s6, s11));
  s1 = add3(s1, s6, v128.load(m, 160)); s12 = rot8(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot7(v128.xor(s6, s11));
  s2 = add3(s2, s7, v128.load(m, 32)); s13 = rot16(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot12(v128.xor(s7, s8));
  s2 = add3(s2, s7, v128.load(m, 96)); s13 = rot8(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot7(v128.xor(s7, s8));
  s3 = add3(s3, s4, v128.load(m, 64)); s14 = rot16(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot12(v128.xor(s4, s9));
  s3 = add3(s3, s4, v128.load(m, 112)); s14 = rot8(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot7(v128.xor(s4, s9));
  // round 6
  s0 = add3(s0, s4, v128.load(m, 176)); s12 = rot16(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot12(v128.xor(s4, s8));
  s0 = add3(s0, s4, v128.load(m, 240)); s12 = rot8(v128.xor(s12, s0)); s8 = i32x4.add(s8, s12); s4 = rot7(v128.xor(s4, s8));
  s1 = add3(s1, s5, v128.load(m, 80)); s13 = rot16(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot12(v128.xor(s5, s9));
  s1 = add3(s1, s5, v128.load(m, 0)); s13 = rot8(v128.xor(s13, s1)); s9 = i32x4.add(s9, s13); s5 = rot7(v128.xor(s5, s9));
  s2 = add3(s2, s6, v128.load(m, 16)); s14 = rot16(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot12(v128.xor(s6, s10));
  s2 = add3(s2, s6, v128.load(m, 144)); s14 = rot8(v128.xor(s14, s2)); s10 = i32x4.add(s10, s14); s6 = rot7(v128.xor(s6, s10));
  s3 = add3(s3, s7, v128.load(m, 128)); s15 = rot16(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot12(v128.xor(s7, s11));
  s3 = add3(s3, s7, v128.load(m, 96)); s15 = rot8(v128.xor(s15, s3)); s11 = i32x4.add(s11, s15); s7 = rot7(v128.xor(s7, s11));
  s0 = add3(s0, s5, v128.load(m, 224)); s15 = rot16(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot12(v128.xor(s5, s10));
  s0 = add3(s0, s5, v128.load(m, 160)); s15 = rot8(v128.xor(s15, s0)); s10 = i32x4.add(s10, s15); s5 = rot7(v128.xor(s5, s10));
  s1 = add3(s1, s6, v128.load(m, 32)); s12 = rot16(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot12(v128.xor(s6, s11));
  s1 = add3(s1, s6, v128.load(m, 192)); s12 = rot8(v128.xor(s12, s1)); s11 = i32x4.add(s11, s12); s6 = rot7(v128.xor(s6, s11));
  s2 = add3(s2, s7, v128.load(m, 48)); s13 = rot16(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot12(v128.xor(s7, s8));
  s2 = add3(s2, s7, v128.load(m, 64)); s13 = rot8(v128.xor(s13, s2)); s8 = i32x4.add(s8, s13); s7 = rot7(v128.xor(s7, s8));
  s3 = add3(s3, s4, v128.load(m, 112)); s14 = rot16(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot12(v128.xor(s4, s9));
  s3 = add3(s3, s4, v128.load(m, 208)); s14 = rot8(v128.xor(s14, s3)); s9 = i32x4.add(s9, s14); s4 = rot7(v128.xor(s4, s9));
  v128.store(cvOut, v128.xor(s0, s8));
  v128.store(cvOut, v128.xor(s1, s9), 16);
  v128.store(cvOut, v128.xor(s2, s10), 32);
  v128.store(cvOut, v128.xor(s3, s11), 48);
  v128.store(cvOut, v128.xor(s4, s12), 64);
  v128.store(cvOut, v128.xor(s5, s13), 80);
  v128.store(cvOut, v128.xor(s6, s14), 96);
  v128.store(cvOut, v128.xor(s7, s15), 112);
}

/** Transposes 16 bytes (4 words) from each of four blocks into 4 v128 at `dst`: dst[w] lane j = word w of block j. */
// @ts-ignore: decorator
@inline function transposeQuarter(p0: usize, p1: usize, p2: usize, p3: usize, dst: usize): void {
  const a0 = v128.load(p0), a1 = v128.load(p1), a2 = v128.load(p2), a3 = v128.load(p3);
  const t0 = i32x4.shuffle(a0, a1, 0, 4, 1, 5), t1 = i32x4.shuffle(a0, a1, 2, 6, 3, 7);
  const t2 = i32x4.shuffle(a2, a3, 0, 4, 1, 5), t3 = i32x4.shuffle(a2, a3, 2, 6, 3, 7);
  v128.store(dst, i64x2.shuffle(t0, t2, 0, 2));
  v128.store(dst, i64x2.shuffle(t0, t2, 1, 3), 16);
  v128.store(dst, i64x2.shuffle(t1, t3, 0, 2), 32);
  v128.store(dst, i64x2.shuffle(t1, t3, 1, 3), 48);
}

/** Lane j of the result is the low (hi = false) or high half of counter + j. */
function counterLanes(counter: u64, hi: bool): v128 {
  const s: u64 = hi ? 32 : 0;
  let v = i32x4.splat(<i32>(counter >> s));
  v = i32x4.replace_lane(v, 1, <i32>((counter + 1) >> s));
  v = i32x4.replace_lane(v, 2, <i32>((counter + 2) >> s));
  return i32x4.replace_lane(v, 3, <i32>((counter + 3) >> s));
}

/**
 * Hashes four whole 1-KiB chunks (at p0..p3, chunk counters counter..counter+3), none of them
 * the root, into one transposed group of chaining values at `out`.
 */
function chunks4(p0: usize, p1: usize, p2: usize, p3: usize, counter: u64, out: usize): void {
  memory.copy(out, IV_GROUP, 128);
  const lo = counterLanes(counter, false), hi = counterLanes(counter, true);
  const len = i32x4.splat(<i32>BLOCK);
  for (let off: usize = 0; off < CHUNK; off += BLOCK) {
    transposeQuarter(p0 + off, p1 + off, p2 + off, p3 + off, MSG4);
    transposeQuarter(p0 + off + 16, p1 + off + 16, p2 + off + 16, p3 + off + 16, MSG4 + 64);
    transposeQuarter(p0 + off + 32, p1 + off + 32, p2 + off + 32, p3 + off + 32, MSG4 + 128);
    transposeQuarter(p0 + off + 48, p1 + off + 48, p2 + off + 48, p3 + off + 48, MSG4 + 192);
    const flags: u32 = off == 0 ? CHUNK_START : off == CHUNK - BLOCK ? CHUNK_END : 0;
    compress4(out, lo, hi, len, i32x4.splat(<i32>flags), out);
  }
}

/**
 * Four parent nodes from two transposed groups: parent j of the output group joins chaining
 * values 2j and 2j+1 of the eight in `left` and `right` (lanes 0..3 of left, then of right).
 * `out` may equal `left`.
 */
function parents4(left: usize, right: usize, flags: u32, out: usize): void {
  for (let w: usize = 0; w < 128; w += 16) {
    const l = v128.load(left + w), r = v128.load(right + w);
    v128.store(MSG4 + w, i32x4.shuffle(l, r, 0, 2, 4, 6));
    v128.store(MSG4 + 128 + w, i32x4.shuffle(l, r, 1, 3, 5, 7));
  }
  const zero = i32x4.splat(0);
  compress4(IV_GROUP, zero, zero, i32x4.splat(<i32>BLOCK), i32x4.splat(<i32>flags), out);
}

// ---------------------------------------------------------------------------------------------
// One compression (the state as four v128 rows)

/** The four message words of one half-round, at the indices listed at t[0..4]. */
// @ts-ignore: decorator
@inline function gather(block: usize, t: usize): v128 {
  let v = v128.load32_zero(block + (<usize>load<u8>(t) << 2));
  v = v128.load32_lane(block + (<usize>load<u8>(t, 1) << 2), v, 1);
  v = v128.load32_lane(block + (<usize>load<u8>(t, 2) << 2), v, 2);
  return v128.load32_lane(block + (<usize>load<u8>(t, 3) << 2), v, 3);
}

/** Compresses the 64-byte block at `block`; writes the 32-byte chaining value to `out` (may equal `cv`). */
function compress1(cv: usize, block: usize, counter: u64, blockLen: u32, flags: u32, out: usize): void {
  let r0 = v128.load(cv), r1 = v128.load(cv, 16);
  let r2 = i32x4(IV0, IV1, IV2, IV3);
  let r3 = i32x4.replace_lane(i32x4.splat(<i32>counter), 1, <i32>(counter >> 32));
  r3 = i32x4.replace_lane(i32x4.replace_lane(r3, 2, <i32>blockLen), 3, <i32>flags);
  for (let t = SCHEDULE, end = SCHEDULE + 7 * 16; t < end; t += 16) {
    // Columns: G(0,4,8,12), G(1,5,9,13), G(2,6,10,14), G(3,7,11,15) in the four lanes.
    r0 = add3(r0, r1, gather(block, t)); r3 = rot16(v128.xor(r3, r0)); r2 = i32x4.add(r2, r3); r1 = rot12(v128.xor(r1, r2));
    r0 = add3(r0, r1, gather(block, t + 4)); r3 = rot8(v128.xor(r3, r0)); r2 = i32x4.add(r2, r3); r1 = rot7(v128.xor(r1, r2));
    // Diagonals: rotate rows 1..3 so that lane j holds G(j, 4+(j+1)%4, 8+(j+2)%4, 12+(j+3)%4).
    r1 = i32x4.shuffle(r1, r1, 1, 2, 3, 0); r2 = i32x4.shuffle(r2, r2, 2, 3, 0, 1); r3 = i32x4.shuffle(r3, r3, 3, 0, 1, 2);
    r0 = add3(r0, r1, gather(block, t + 8)); r3 = rot16(v128.xor(r3, r0)); r2 = i32x4.add(r2, r3); r1 = rot12(v128.xor(r1, r2));
    r0 = add3(r0, r1, gather(block, t + 12)); r3 = rot8(v128.xor(r3, r0)); r2 = i32x4.add(r2, r3); r1 = rot7(v128.xor(r1, r2));
    r1 = i32x4.shuffle(r1, r1, 3, 0, 1, 2); r2 = i32x4.shuffle(r2, r2, 2, 3, 0, 1); r3 = i32x4.shuffle(r3, r3, 1, 2, 3, 0);
  }
  v128.store(out, v128.xor(r0, r2));
  v128.store(out, v128.xor(r1, r3), 16);
}

/** Chaining value (or, with ROOT in `rootFlag`, the hash) of one chunk of 0..1024 bytes. */
function chunk1(p: usize, len: usize, counter: u64, rootFlag: u32, out: usize): void {
  memory.copy(CV1, IV_CV, 32);
  const blocks: usize = len == 0 ? 1 : (len + BLOCK - 1) / BLOCK;
  for (let b: usize = 0; b < blocks; b++) {
    let flags: u32 = b == 0 ? CHUNK_START : 0;
    let bp = p + b * BLOCK;
    let blen = BLOCK;
    if (b == blocks - 1) {
      flags |= CHUNK_END | rootFlag;
      blen = len - b * BLOCK;
      if (blen < BLOCK) {
        memory.fill(PAD, 0, BLOCK);
        memory.copy(PAD, bp, blen);
        bp = PAD;
      }
    }
    compress1(CV1, bp, counter, <u32>blen, flags, CV1);
  }
  memory.copy(out, CV1, 32);
}

/** A parent node from two chaining values (32 bytes each). */
function parent1(left: usize, right: usize, flags: u32, out: usize): void {
  memory.copy(PAIR, left, 32);
  memory.copy(PAIR + 32, right, 32);
  compress1(IV_CV, PAIR, 0, <u32>BLOCK, flags, out);
}

// ---------------------------------------------------------------------------------------------
// Subtrees

/** Address of word 0 of chaining value `i` in the transposed CVS area (word w is 16*w further). */
// @ts-ignore: decorator
@inline function slot(i: usize): usize {
  return CVS + ((i >> 2) << 7) + ((i & 3) << 2);
}

function putCV(i: usize, cv: usize): void {
  const s = slot(i);
  for (let w: usize = 0; w < 8; w++) store<u32>(s + (w << 4), load<u32>(cv + (w << 2)));
}

function getCV(i: usize, cv: usize): void {
  const s = slot(i);
  for (let w: usize = 0; w < 8; w++) store<u32>(cv + (w << 2), load<u32>(s + (w << 4)));
}

/**
 * The subtree over len bytes at p (at most SUBTREE_BYTES) whose first chunk has number
 * `counter`: its chaining value to `out`, or with `root` the hash. Chunks are hashed four at a
 * time, then each level of parents four at a time; a level of odd length carries its last
 * chaining value up unchanged, which builds the tree the specification defines (left subtrees
 * complete, with a power-of-two number of chunks).
 */
function subtree(p: usize, len: usize, counter: u64, root: bool, out: usize): void {
  const n: usize = len == 0 ? 1 : (len + CHUNK - 1) / CHUNK;
  if (n == 1) {
    chunk1(p, len, counter, root ? ROOT : 0, out);
    return;
  }
  const whole = len / CHUNK;
  let i: usize = 0;
  for (; i + 4 <= whole; i += 4) {
    const q = p + i * CHUNK;
    chunks4(q, q + CHUNK, q + 2 * CHUNK, q + 3 * CHUNK, counter + <u64>i, CVS + (i << 5));
  }
  const rest = whole - i;
  if (rest >= 2) {
    // Two or three whole chunks left: one 4-lane pass (the spare lane repeats the last chunk).
    const q = p + i * CHUNK;
    chunks4(q, q + CHUNK, q + (rest - 1) * CHUNK, q + (rest - 1) * CHUNK, counter + <u64>i, CVS + (i << 5));
    i += rest;
  } else if (rest == 1) {
    chunk1(p + i * CHUNK, CHUNK, counter + <u64>i, 0, CV1);
    putCV(i, CV1);
    i++;
  }
  if (i < n) {
    chunk1(p + i * CHUNK, len - i * CHUNK, counter + <u64>i, 0, CV1);
    putCV(i, CV1);
  }
  let m = n;
  while (m > 2) {
    const pairs = m >> 1, odd = m & 1;
    if (odd) getCV(m - 1, CV1);
    for (let g: usize = 0; g << 2 < pairs; g++) parents4(CVS + (g << 8), CVS + (g << 8) + 128, PARENT, CVS + (g << 7));
    if (odd) putCV(pairs, CV1);
    m = pairs + odd;
  }
  getCV(0, PAIR);
  getCV(1, PAIR + 32);
  compress1(IV_CV, PAIR, 0, <u32>BLOCK, root ? PARENT | ROOT : PARENT, out);
}

// ---------------------------------------------------------------------------------------------
// Streaming over complete subtrees, and the exports

const ACC: usize = memory.data(32, 16);

/** Starts a new input. */
export function blake3_stream_begin(): void {
  stackLen = 0;
  subtrees = 0;
}

/**
 * Hashes `count` complete subtrees (SUBTREE_BYTES each) at p, continuing the input; more input
 * must follow (blake3_stream_end takes the last 1..SUBTREE_BYTES bytes).
 */
export function blake3_stream_subtrees(p: usize, count: usize): void {
  for (let k: usize = 0; k < count; k++) {
    subtree(p + k * SUBTREE_BYTES, SUBTREE_BYTES, subtrees * SUBTREE_CHUNKS, false, ACC);
    subtrees++;
    // Merge every pair of equal subtrees that is now complete (one per trailing zero bit).
    for (let t = subtrees; (t & 1) == 0; t >>= 1) {
      stackLen--;
      parent1(STACK + (stackLen << 5), ACC, PARENT, ACC);
    }
    memory.copy(STACK + (stackLen << 5), ACC, 32);
    stackLen++;
  }
}

/** Hashes the last `len` bytes of the input at p (1..SUBTREE_BYTES, or 0 for an empty input); the hash to `out`. */
export function blake3_stream_end(p: usize, len: usize, out: usize): void {
  const counter = subtrees * SUBTREE_CHUNKS;
  if (stackLen == 0) {
    subtree(p, len, counter, true, out);
    return;
  }
  subtree(p, len, counter, false, ACC);
  while (stackLen > 0) {
    stackLen--;
    parent1(STACK + (stackLen << 5), ACC, stackLen == 0 ? PARENT | ROOT : PARENT, ACC);
  }
  memory.copy(out, ACC, 32);
}

/** BLAKE3 hash (32 bytes at `out`) of [p, p+len). */
export function blake3_hash(p: usize, len: usize, out: usize): void {
  const whole = len > SUBTREE_BYTES ? (len - 1) / SUBTREE_BYTES : 0;
  blake3_stream_begin();
  blake3_stream_subtrees(p, whole);
  blake3_stream_end(p + whole * SUBTREE_BYTES, len - whole * SUBTREE_BYTES, out);
}

const ROOTS: usize = memory.data(128, 16);
const PAD4: usize = memory.data(256, 16);

/**
 * Hashes of four inputs of the same length (1..1024 bytes, so each is one chunk and its own
 * root) at p, p+size, p+2*size, p+3*size, one per lane: 32 bytes each at out + 32*j.
 */
function roots4(p: usize, size: usize, out: usize): void {
  memory.copy(ROOTS, IV_GROUP, 128);
  const zero = i32x4.splat(0);
  const blocks = (size + BLOCK - 1) / BLOCK;
  for (let b: usize = 0; b < blocks; b++) {
    const off = b * BLOCK;
    let flags: u32 = b == 0 ? CHUNK_START : 0;
    let blen = BLOCK;
    let q = p + off, stride = size;
    if (b == blocks - 1) {
      flags |= CHUNK_END | ROOT;
      blen = size - off;
      if (blen < BLOCK) {
        // Zero-padded copies of the four short last blocks.
        memory.fill(PAD4, 0, 4 * BLOCK);
        for (let j: usize = 0; j < 4; j++) memory.copy(PAD4 + j * BLOCK, q + j * size, blen);
        q = PAD4;
        stride = BLOCK;
      }
    }
    transposeQuarter(q, q + stride, q + 2 * stride, q + 3 * stride, MSG4);
    transposeQuarter(q + 16, q + stride + 16, q + 2 * stride + 16, q + 3 * stride + 16, MSG4 + 64);
    transposeQuarter(q + 32, q + stride + 32, q + 2 * stride + 32, q + 3 * stride + 32, MSG4 + 128);
    transposeQuarter(q + 48, q + stride + 48, q + 2 * stride + 48, q + 3 * stride + 48, MSG4 + 192);
    compress4(ROOTS, zero, zero, i32x4.splat(<i32>blen), i32x4.splat(<i32>flags), ROOTS);
  }
  for (let j: usize = 0; j < 4; j++) {
    for (let w: usize = 0; w < 8; w++) store<u32>(out + (j << 5) + (w << 2), load<u32>(ROOTS + (w << 4) + (j << 2)));
  }
}

/**
 * BLAKE3 of each `size`-byte slice of [p, p+len) (the last may be short): 32 bytes at out + 32*i.
 * Slices of one chunk or less are hashed four at a time, one per lane.
 */
export function blake3_chunks(p: usize, len: usize, size: usize, out: usize): void {
  let i: usize = 0, o: usize = 0;
  if (size <= CHUNK) {
    for (; len - o >= 4 * size; o += 4 * size, i += 4) roots4(p + o, size, out + (i << 5));
  }
  for (; o < len; o += size) {
    blake3_hash(p + o, min(size, len - o), out + (i++ << 5));
  }
}
