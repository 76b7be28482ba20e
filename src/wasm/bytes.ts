/** Buffers in WASM memory, scatter/gather copies between them, zero detection, block comparison. */
import { StrataError } from '../errors.js';
import { allocate, bytes, checkBytes, checkInt, free, inWasm, kernels, scratch, SCRATCH_DATA, SCRATCH_OUT, stage, words32 } from './kernels.js';

/** Largest WasmBuffer (2 GiB); the whole of wasm32 memory is 4 GiB. */
export const MAX_BUFFER = 2 ** 31;

const reclaim = new FinalizationRegistry<{ ptr: number; size: number }>((held) => {
  free(held.ptr, held.size);
});

let addressOf: (b: WasmBuffer) => number;

/**
 * A zero-filled buffer living in WASM memory, so kernels read and write it in place (no
 * staging copy). `view` is a fresh Uint8Array each time: do not keep it across an await or a
 * call that may grow memory (allocating buffers or bitmap pages), since growth detaches it.
 * Call dispose() when done; a buffer that is garbage collected is reclaimed too.
 */
export class WasmBuffer {
  readonly size: number;
  #ptr: number;
  #token = {};

  static {
    addressOf = (b) => {
      if (b.#ptr < 0) throw new StrataError('closed', 'This WasmBuffer has been disposed.');
      return b.#ptr;
    };
  }

  constructor(size: number) {
    kernels();
    checkInt('size', size, 0, MAX_BUFFER);
    this.size = size;
    this.#ptr = allocate(size);
    bytes().fill(0, this.#ptr, this.#ptr + size);
    reclaim.register(this, { ptr: this.#ptr, size }, this.#token);
  }

  /** A view of the buffer's bytes, valid until WASM memory next grows. */
  get view(): Uint8Array {
    const p = addressOf(this);
    return new Uint8Array(kernels().memory.buffer, p, this.size);
  }

  /** Frees the memory for reuse; the buffer cannot be used afterwards. Idempotent. */
  dispose(): void {
    if (this.#ptr < 0) return;
    reclaim.unregister(this.#token);
    free(this.#ptr, this.size);
    this.#ptr = -1;
  }
}

/**
 * Copies runs [dstOffset, srcOffset, length]* from `src` to `dst` (memory.copy, so overlapping
 * runs within one buffer behave like copyWithin). All runs are checked first: if any is out of
 * bounds, nothing is copied and `out-of-range` is thrown.
 */
export function copyRuns(dst: WasmBuffer, src: WasmBuffer, runs: Uint32Array): void {
  const k = kernels();
  if (!(dst instanceof WasmBuffer) || !(src instanceof WasmBuffer)) throw new StrataError('invalid-argument', 'copyRuns copies between WasmBuffers.');
  if (!(runs instanceof Uint32Array) || runs.length % 3 !== 0) throw new StrataError('invalid-argument', 'runs must be a Uint32Array of [dstOffset, srcOffset, length] triples.');
  const d = addressOf(dst), s = addressOf(src);
  const n = runs.length / 3;
  const maxRuns = Math.floor(SCRATCH_DATA / 12);
  if (n > maxRuns) {
    // More than one batch: check everything up front so a bad run copies nothing.
    for (let i = 0; i < runs.length; i += 3) {
      const len = runs[i + 2]!;
      if (runs[i]! + len > dst.size || runs[i + 1]! + len > src.size) throw outOfRange(i / 3, runs, dst, src);
    }
  }
  for (let first = 0; first < n; first += maxRuns) {
    const c = Math.min(maxRuns, n - first);
    words32().set(runs.subarray(first * 3, (first + c) * 3), scratch / 4);
    const bad = k.copy_runs(d, dst.size, s, src.size, scratch, c);
    if (bad >= 0) throw outOfRange(first + bad, runs, dst, src);
  }
}

function outOfRange(i: number, runs: Uint32Array, dst: WasmBuffer, src: WasmBuffer): StrataError {
  return new StrataError('out-of-range', `copy run ${i} [dst ${runs[i * 3]}, src ${runs[i * 3 + 1]}, length ${runs[i * 3 + 2]}] does not fit the destination (${dst.size} bytes) or source (${src.size} bytes); nothing was copied.`);
}

/** Chunk staged per zero check: small, so a nonzero byte early in a large input is found fast. */
const ZERO_CHUNK = 256 * 1024;

/** True when every byte of `data` is zero (true for an empty array). */
export function isZero(data: Uint8Array): boolean {
  const k = kernels();
  checkBytes('data', data);
  const n = data.length;
  if (inWasm(data)) return k.is_zero(data.byteOffset, n) !== 0;
  // Most non-zero blocks differ within the first bytes: look before paying for a copy.
  const head = Math.min(n, 32);
  for (let i = 0; i < head; i++) if (data[i] !== 0) return false;
  for (let o = head; o < n; o += ZERO_CHUNK) {
    const m = Math.min(ZERO_CHUNK, n - o);
    if (!k.is_zero(stage(data, o, m, scratch), m)) return false;
  }
  return true;
}

/**
 * out[i] = 1 when block i of `a` equals block i of `b`, else 0. `a` and `b` have the same length;
 * the last block may be short.
 */
export function equalBlocks(a: Uint8Array, b: Uint8Array, blockSize: number, out?: Uint8Array): Uint8Array {
  const k = kernels();
  checkBytes('a', a);
  checkBytes('b', b);
  checkInt('blockSize', blockSize, 1, 2 ** 30);
  if (a.length !== b.length) throw new StrataError('invalid-argument', `a and b differ in length (${a.length} and ${b.length} bytes).`);
  const n = a.length;
  const count = Math.ceil(n / blockSize);
  if (out === undefined) out = new Uint8Array(count);
  else if (!(out instanceof Uint8Array) || out.length < count) throw new StrataError('invalid-argument', `out must be a Uint8Array of at least ${count} bytes.`);
  const half = SCRATCH_DATA / 2;
  const res = scratch + SCRATCH_DATA;
  if (blockSize > half && !(inWasm(a) && inWasm(b))) {
    // Blocks too large to stage two at a time: compare chunk by chunk, stopping at a difference.
    for (let i = 0, o = 0; o < n; i++, o += blockSize) {
      const end = Math.min(o + blockSize, n);
      let eq = true;
      for (let c = o; c < end && eq; c += half) {
        const m = Math.min(half, end - c);
        eq = k.equal_bytes(stage(a, c, m, scratch), stage(b, c, m, scratch + half), m) !== 0;
      }
      out[i] = eq ? 1 : 0;
    }
    return out;
  }
  const per = Math.max(1, Math.min(SCRATCH_OUT, Math.floor(half / blockSize)));
  const batch = per * blockSize;
  for (let o = 0, i = 0; o < n; o += batch, i += per) {
    const m = Math.min(batch, n - o);
    k.equal_blocks(stage(a, o, m, scratch), stage(b, o, m, scratch + half), m, blockSize, res);
    out.set(bytes().subarray(res, res + Math.ceil(m / blockSize)), i);
  }
  return out;
}

/** Address of a WasmBuffer in WASM memory (for src/wasm/ only). */
export function bufferAddress(b: WasmBuffer): number {
  return addressOf(b);
}
