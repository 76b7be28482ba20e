/**
 * BLAKE3 (hash mode, 32-byte output): the cryptographic names of content-addressed chunks.
 * `blake3` hashes one input; `blake3Chunks` hashes every `chunkSize` slice of an input in one
 * kernel call per batch of slices (never one call per slice). Inputs in JS memory are staged
 * through the scratch area, longer ones streamed in 2 MiB subtrees of the BLAKE3 tree; views
 * of WASM memory (WasmBuffer.view) are hashed in place. See assembly/blake3.ts for the kernel.
 */
import { StrataError } from '../errors.js';
import { forBatches, MAX_SEGMENT } from './hash.js';
import { bytes, checkBytes, checkInt, inWasm, kernels, scratch, SCRATCH_DATA, stage } from './kernels.js';

/** Bytes of a BLAKE3 hash as produced here. */
export const BLAKE3_BYTES = 32;
/**
 * Bytes of a complete subtree the kernel streams (2048 BLAKE3 chunks; SUBTREE_BYTES in
 * assembly/blake3.ts). The scratch area holds a whole number of them.
 */
const SUBTREE = 2 * 1024 * 1024;
if (SCRATCH_DATA % SUBTREE !== 0) throw new Error('src/wasm: the scratch area must hold whole BLAKE3 subtrees');

/**
 * BLAKE3 of data[from, from+n) for n > SCRATCH_DATA in JS memory: whole subtrees staged and
 * hashed a scratch area at a time, then the last 1..SUBTREE bytes. The hash goes to `out`.
 */
function streamBlake3(data: Uint8Array, from: number, n: number, out: number): void {
  const k = kernels();
  const whole = Math.floor((n - 1) / SUBTREE) * SUBTREE;
  k.blake3_stream_begin();
  for (let o = 0; o < whole;) {
    const m = Math.min(SCRATCH_DATA, whole - o);
    k.blake3_stream_subtrees(stage(data, from + o, m, scratch), m / SUBTREE);
    o += m;
  }
  k.blake3_stream_end(stage(data, from + whole, n - whole, scratch), n - whole, out);
}

/** BLAKE3 hash of `data` (any length): 32 bytes, equal to `b3sum` and hash-wasm's blake3. */
export function blake3(data: Uint8Array): Uint8Array {
  const k = kernels();
  checkBytes('data', data);
  const n = data.length;
  const out = scratch + SCRATCH_DATA;
  if (inWasm(data) || n <= SCRATCH_DATA) k.blake3_hash(stage(data, 0, n, scratch), n, out);
  else streamBlake3(data, 0, n, out);
  return bytes().slice(out, out + BLAKE3_BYTES);
}

/**
 * BLAKE3 of each `chunkSize` slice of `data` (the last may be shorter; an empty `data` has no
 * slices): bytes [32*i, 32*i+32) of the result are the hash of data[i*chunkSize, (i+1)*chunkSize).
 * Writes into `out` when given (at least 32 bytes per slice) and returns it.
 */
export function blake3Chunks(data: Uint8Array, chunkSize: number, out?: Uint8Array): Uint8Array {
  const k = kernels();
  checkBytes('data', data);
  checkInt('chunkSize', chunkSize, 1, MAX_SEGMENT);
  const count = Math.ceil(data.length / chunkSize);
  if (out === undefined) out = new Uint8Array(count * BLAKE3_BYTES);
  else if (!(out instanceof Uint8Array) || out.length < count * BLAKE3_BYTES) {
    throw new StrataError('invalid-argument', `out must be a Uint8Array of at least ${count * BLAKE3_BYTES} bytes (32 per chunk).`);
  }
  const target = out;
  const res = scratch + SCRATCH_DATA;
  forBatches(data, chunkSize, BLAKE3_BYTES, (p, len, first) => {
    k.blake3_chunks(p, len, chunkSize, res);
    const c = Math.ceil(len / chunkSize);
    target.set(bytes().subarray(res, res + c * BLAKE3_BYTES), first * BLAKE3_BYTES);
  }, (from, len, index) => {
    streamBlake3(data, from, len, res);
    target.set(bytes().subarray(res, res + BLAKE3_BYTES), index * BLAKE3_BYTES);
  });
  return out;
}
