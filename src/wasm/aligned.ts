/**
 * Page-aligned I/O buffers. JavaScript cannot ask for the address of an ArrayBuffer, and
 * direct I/O (O_DIRECT) needs the memory aligned to the device's block size; the memory of a
 * `WebAssembly.Memory` starts on a page boundary, and one that may not grow is never moved or
 * detached. Bulk copiers (qcow2 import and export) take their buffers from here, and a store
 * that can bypass the page cache asks {@link isPageAligned} before doing so.
 *
 * This memory is separate from the kernels' memory (kernels.ts): kernels never see it in place.
 */
import { StrataError } from '../errors.js';

/** Alignment promised for the start of an aligned buffer (and checked by isPageAligned). */
export const PAGE = 4096;
const WASM_PAGE = 65536;
/** Largest aligned buffer: bulk I/O buffers are a few MiB. */
export const MAX_ALIGNED = 256 << 20;

const aligned = new WeakSet<ArrayBufferLike>();

/** A zero-filled buffer of `size` bytes whose first byte is page-aligned. */
export function alignedBytes(size: number): Uint8Array {
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_ALIGNED) {
    throw new StrataError('invalid-argument', `An aligned I/O buffer must be 0 to ${MAX_ALIGNED} bytes (asked for ${size}).`);
  }
  const pages = Math.max(1, Math.ceil(size / WASM_PAGE));
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  aligned.add(memory.buffer);
  return new Uint8Array(memory.buffer, 0, size);
}

/** True when `view` starts on a page boundary of memory from {@link alignedBytes}. */
export function isPageAligned(view: Uint8Array): boolean {
  return view.byteOffset % PAGE === 0 && aligned.has(view.buffer);
}
