/**
 * Loader and memory manager for build/kernels.wasm. Where the module comes from (a file under
 * Node, a fetch in browsers, nothing in workerd) is `#kernel-loader`, chosen by the package's
 * "imports" conditions (./kernel-loader.ts). This file and its siblings in src/wasm/ are
 * the only code that touches WASM memory. Views of memory are never kept across an await or a
 * call that may grow memory: `bytes()` and friends re-create them when the buffer changes.
 */
import { compileKernels } from '#kernel-loader';
import { StrataError } from '../errors.js';

/** The raw exports of assembly/index.ts (pointers and lengths are byte offsets into `memory`). */
export interface KernelExports {
  memory: WebAssembly.Memory;
  heap_base(): number;
  xxh3_64(p: number, len: number, seed: bigint): bigint;
  xxh3_128(p: number, len: number, seed: bigint, out: number): void;
  xxh3_stream_begin(seed: bigint): void;
  xxh3_stream_blocks(p: number, blocks: number): void;
  xxh3_stream_end(p: number, lastLen: number, totalLen: bigint, out: number): bigint;
  xxh3_segments64(p: number, len: number, seg: number, seed: bigint, out: number): void;
  xxh3_segments128(p: number, len: number, seg: number, seed: bigint, out: number): void;
  xxh64(p: number, len: number, seed: bigint): bigint;
  xxh64_stream_begin(seed: bigint): void;
  xxh64_stream_stripes(p: number, stripes: number): void;
  xxh64_stream_end(p: number, tail: number, total: bigint, seed: bigint): bigint;
  scan_blocks(p: number, len: number, bs: number, hashes: number, zero: number): void;
  verify_blocks(p: number, len: number, bs: number, expected: number): number;
  copy_runs(dst: number, dstSize: number, src: number, srcSize: number, runs: number, count: number): number;
  is_zero(p: number, len: number): number;
  equal_bytes(a: number, b: number, len: number): number;
  equal_blocks(a: number, b: number, len: number, bs: number, out: number): void;
  zero_page(): number;
  bits_set(page: number, from: number, to: number): void;
  bits_clear(page: number, from: number, to: number): void;
  bits_count(page: number, from: number, to: number): number;
  bits_next_set(page: number, from: number, to: number): number;
  bits_next_clear(page: number, from: number, to: number): number;
  bits_op(dst: number, src: number, from: number, to: number, op: number): void;
  resolve_page(table: number, n: number, from: number, to: number, out: number): void;
  resolve_runs_page(table: number, n: number, from: number, to: number, tmp: number, runs: number): number;
  blake3_hash(p: number, len: number, out: number): void;
  blake3_chunks(p: number, len: number, size: number, out: number): void;
  blake3_stream_begin(): void;
  blake3_stream_subtrees(p: number, count: number): void;
  blake3_stream_end(p: number, len: number, out: number): void;
}

/** Exports checked on a module passed to loadKernels(), so a wrong or stale module fails at once. */
const REQUIRED_EXPORTS = ['memory', 'heap_base', 'xxh3_64', 'xxh64', 'scan_blocks', 'copy_runs', 'resolve_page', 'blake3_hash', 'blake3_chunks', 'blake3_stream_end'];

/** Bytes of the scratch area where inputs from JS memory are staged for a kernel call. */
export const SCRATCH_DATA = 2 * 1024 * 1024;
/** Bytes after the data area for kernel outputs (hashes, flags). */
export const SCRATCH_OUT = 64 * 1024;
/** Upper bound of WASM memory this module will grow to (wasm32 cannot address more than 4 GiB). */
const MAX_MEMORY = 4 * 1024 * 1024 * 1024 - 64 * 1024;
const WASM_PAGE = 65536;
const ALIGN = 16;

let exportsRef: KernelExports | undefined;
let loading: Promise<void> | undefined;

/** Start of the scratch area (SCRATCH_DATA + SCRATCH_OUT bytes). */
export let scratch = 0;

/**
 * Loads and instantiates build/kernels.wasm once; later calls return the same promise.
 * Everything else in src/wasm/ is synchronous once this has resolved.
 *
 * `source` is the module already compiled, for runtimes that forbid compiling WebAssembly from
 * bytes at run time (Cloudflare Workers / workerd: the worker imports build/kernels.wasm, which
 * the platform compiles at deploy time, and passes it here before anything else loads the
 * kernels). The first call decides where the kernels come from: a later call, with or without a
 * source, returns the same promise (unless that load failed).
 */
export function loadKernels(source?: WebAssembly.Module): Promise<void> {
  if (source !== undefined && !(source instanceof WebAssembly.Module)) {
    return Promise.reject(new StrataError('invalid-argument', `loadKernels(source): source must be a WebAssembly.Module (build/kernels.wasm compiled by the platform), got ${Object.prototype.toString.call(source)}.`));
  }
  loading ??= instantiate(source).catch((e: unknown) => {
    loading = undefined;
    throw e instanceof StrataError ? e : new StrataError('unsupported', `Could not load the WebAssembly kernels (build/kernels.wasm; run \`npm run build:wasm\`, and check the runtime supports WebAssembly SIMD): ${String(e)}`, { cause: e });
  });
  return loading;
}

async function instantiate(source?: WebAssembly.Module): Promise<void> {
  const module = source ?? await compileKernels();
  const names = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  const missing = REQUIRED_EXPORTS.filter((n) => !names.has(n));
  if (missing.length > 0) {
    throw new StrataError('unsupported', `The WebAssembly module given to loadKernels() is not this version's build/kernels.wasm (it lacks ${missing.join(', ')}): pass the build/kernels.wasm shipped with this package.`);
  }
  const instance = await WebAssembly.instantiate(module, {});
  const k = instance.exports as unknown as KernelExports;
  heapTop = align(k.heap_base());
  freeList.length = 0;
  pageFree.length = 0;
  exportsRef = k;
  scratch = allocate(SCRATCH_DATA + SCRATCH_OUT);
}

/** The kernel exports; throws `unsupported` before loadKernels() has resolved. */
export function kernels(): KernelExports {
  if (exportsRef === undefined) {
    throw new StrataError('unsupported', 'The WebAssembly kernels are not loaded yet: await loadKernels() before calling hash, bitmap or copy functions.');
  }
  return exportsRef;
}

// ---------------------------------------------------------------------------------------------
// Views (re-created whenever memory has grown, since growth detaches the old buffer)

let viewBuffer: ArrayBuffer | undefined;
let u8: Uint8Array = new Uint8Array(0);
let u16: Uint16Array = new Uint16Array(0);
let u32: Uint32Array = new Uint32Array(0);
let u64: BigUint64Array = new BigUint64Array(0);

function refreshViews(): void {
  const buffer = kernels().memory.buffer;
  if (buffer !== viewBuffer) {
    viewBuffer = buffer;
    u8 = new Uint8Array(buffer);
    u16 = new Uint16Array(buffer);
    u32 = new Uint32Array(buffer);
    u64 = new BigUint64Array(buffer);
  }
}

/** A byte view of all of WASM memory; valid until the next call that may grow memory. */
export function bytes(): Uint8Array { refreshViews(); return u8; }
export function words16(): Uint16Array { refreshViews(); return u16; }
export function words32(): Uint32Array { refreshViews(); return u32; }
export function words64(): BigUint64Array { refreshViews(); return u64; }

/** True when `data` is a view of WASM memory itself, so kernels can read it in place. */
export function inWasm(data: ArrayBufferView): boolean {
  return exportsRef !== undefined && data.buffer === exportsRef.memory.buffer;
}

// ---------------------------------------------------------------------------------------------
// Allocator: first fit over an address-ordered free list with coalescing, plus a stack of free
// 8 KiB bitmap pages (the common size, reused without searching). Memory only ever grows.

let heapTop = 0;
const freeList: { off: number; size: number }[] = [];
const pageFree: number[] = [];
/** Bytes of a bitmap page. */
export const PAGE_BYTES = 8192;

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** Allocates `size` bytes (16-byte aligned, contents undefined). Throws `quota` when memory cannot grow. */
export function allocate(size: number): number {
  const k = kernels();
  const need = Math.max(ALIGN, align(size));
  for (let i = 0; i < freeList.length; i++) {
    const f = freeList[i]!;
    if (f.size >= need) {
      const off = f.off;
      if (f.size === need) freeList.splice(i, 1);
      else { f.off += need; f.size -= need; }
      return off;
    }
  }
  // Extend the top: reuse a free block that ends at the top, if any.
  let off = heapTop;
  const last = freeList[freeList.length - 1];
  if (last !== undefined && last.off + last.size === heapTop) {
    off = last.off;
    freeList.pop();
  }
  const end = off + need;
  if (end > MAX_MEMORY) {
    if (off !== heapTop) free(off, heapTop - off);
    throw new StrataError('quota', `WebAssembly memory is exhausted: ${size} more bytes would exceed the 4 GiB wasm32 limit. Dispose of unused buffers and bitmaps.`);
  }
  const have = k.memory.buffer.byteLength;
  if (end > have) {
    try {
      k.memory.grow(Math.ceil((end - have) / WASM_PAGE));
    } catch (e) {
      if (off !== heapTop) free(off, heapTop - off);
      throw new StrataError('quota', `WebAssembly memory could not grow to ${end} bytes: ${String(e)}`, { cause: e });
    }
  }
  heapTop = end;
  return off;
}

/** Returns [off, off+size) (as passed to allocate) to the free list. */
export function free(off: number, size: number): void {
  const n = Math.max(ALIGN, align(size));
  // Binary search for the insertion point.
  let lo = 0, hi = freeList.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (freeList[mid]!.off < off) lo = mid + 1; else hi = mid;
  }
  const prev = lo > 0 ? freeList[lo - 1] : undefined;
  const next = freeList[lo];
  if (prev !== undefined && prev.off + prev.size === off) {
    prev.size += n;
    if (next !== undefined && prev.off + prev.size === next.off) {
      prev.size += next.size;
      freeList.splice(lo, 1);
    }
  } else if (next !== undefined && off + n === next.off) {
    next.off = off;
    next.size += n;
  } else {
    freeList.splice(lo, 0, { off, size: n });
  }
}

/** A zeroed 8 KiB bitmap page. */
export function allocatePage(): number {
  const off = pageFree.pop() ?? allocate(PAGE_BYTES);
  bytes().fill(0, off, off + PAGE_BYTES);
  return off;
}

export function freePage(off: number): void {
  pageFree.push(off);
}

/** For tests and diagnostics: bytes below the top of the heap, and free bytes below it. */
export function heapStats(): { top: number; freeBytes: number; freePages: number } {
  let freeBytes = 0;
  for (const f of freeList) freeBytes += f.size;
  return { top: heapTop, freeBytes, freePages: pageFree.length };
}

/**
 * Copies data[from, from+n) to `dest` in WASM memory, or returns its address when `data` already
 * lives in WASM memory. Returns the address to pass to a kernel.
 */
export function stage(data: Uint8Array, from: number, n: number, dest: number): number {
  if (inWasm(data)) return data.byteOffset + from;
  bytes().set(data.subarray(from, from + n), dest);
  return dest;
}

/** Validates a non-negative safe integer argument. */
export function checkInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new StrataError('invalid-argument', `${name} must be an integer in [${min}, ${max}], got ${String(v)}.`);
  }
  return v;
}

export function checkBytes(name: string, v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new StrataError('invalid-argument', `${name} must be a Uint8Array.`);
  return v;
}
