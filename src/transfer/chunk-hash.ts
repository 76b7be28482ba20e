/**
 * The one place that names the hash of published chunks and objects: BLAKE3-256, computed by the
 * WASM kernel (src/wasm/blake3.ts; many chunks per kernel call). The functions stay async so the
 * first caller loads the kernels; where WebAssembly cannot be compiled at run time (Workers), the
 * host calls `loadKernels(module)` first and these reuse it.
 */
import { blake3, blake3Chunks, loadKernels } from '../wasm/index.js';

export const HASH_BYTES = 32;

/** BLAKE3-256 of `data`. */
export async function hashBytes(data: Uint8Array): Promise<Uint8Array> {
  await loadKernels();
  return blake3(data);
}

/**
 * BLAKE3-256 of each `chunkSize` piece of `data` (the last one may be shorter), 32 bytes per
 * piece, back to back, into `out` when given (it must hold them all).
 */
export async function hashChunks(data: Uint8Array, chunkSize: number, out?: Uint8Array): Promise<Uint8Array> {
  const n = Math.ceil(data.length / chunkSize);
  if (out && out.length < n * HASH_BYTES) throw new RangeError(`hashChunks: out holds ${out.length} bytes, ${n * HASH_BYTES} needed`);
  await loadKernels();
  return blake3Chunks(data, chunkSize, out);
}
