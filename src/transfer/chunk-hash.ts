/**
 * The one place that names the hash of published chunks and objects: BLAKE3-256.
 *
 * Until the WASM kernel (src/wasm/blake3.ts) lands this uses hash-wasm's `blake3`; the rest of
 * transfer/ calls only these two functions, so switching is a change to this file alone.
 */
import { createBLAKE3, type IHasher } from 'hash-wasm';

export const HASH_BYTES = 32;

let hasher: Promise<IHasher> | undefined;
function blake3(): Promise<IHasher> {
  return (hasher ??= createBLAKE3(256));
}

/** BLAKE3-256 of `data`. */
export async function hashBytes(data: Uint8Array): Promise<Uint8Array> {
  const h = await blake3();
  h.init();
  h.update(data);
  return h.digest('binary');
}

/**
 * BLAKE3-256 of each `chunkSize` piece of `data` (the last one may be shorter), 32 bytes per
 * piece, back to back, into `out` when given (it must hold them all).
 */
export async function hashChunks(data: Uint8Array, chunkSize: number, out?: Uint8Array): Promise<Uint8Array> {
  const n = Math.ceil(data.length / chunkSize);
  const target = out ?? new Uint8Array(n * HASH_BYTES);
  if (target.length < n * HASH_BYTES) throw new RangeError(`hashChunks: out holds ${target.length} bytes, ${n * HASH_BYTES} needed`);
  const h = await blake3();
  for (let i = 0; i < n; i++) {
    h.init();
    h.update(data.subarray(i * chunkSize, Math.min(data.length, (i + 1) * chunkSize)));
    target.set(h.digest('binary'), i * HASH_BYTES);
  }
  return target;
}
