/**
 * WebAssembly kernels (build/kernels.wasm, from assembly/) behind a typed, synchronous API.
 * Call `await loadKernels()` once; everything else is synchronous and throws
 * StrataError('unsupported') before the kernels are loaded.
 *
 * Decisions (see also the comments in each file):
 * - Memory is managed here in TypeScript, not by an AssemblyScript runtime (asconfig keeps the
 *   "stub" runtime): a first-fit free list with coalescing for WasmBuffers, a free stack for the
 *   8 KiB bitmap pages, and one fixed scratch area (2 MiB data + 64 KiB results) through which
 *   inputs from JS memory are staged. Memory grows on demand and never shrinks.
 * - Inputs larger than the scratch area are streamed (XXH3 in whole 1024-byte blocks, XXH64 in
 *   32-byte stripes), so any length hashes without growing memory; segment and block sizes are
 *   bounded at 1 GiB, WasmBuffers at 2 GiB.
 * - A Uint8Array that is itself a view of WASM memory (WasmBuffer.view) is read in place.
 * - Seeds are bigints taken modulo 2^64; 64-bit results are unsigned bigints; 128-bit results
 *   are 16 bytes in canonical (big-endian, high half first) order.
 * - hashSegments64/128 take an optional trailing seed (default 0n) beyond the requested API.
 * - BLAKE3 (blake3, blake3Chunks) names content-addressed chunks: hash mode, 32-byte output.
 *   Four 1-KiB BLAKE3 chunks are hashed at once in v128 lanes, parents four at a time; inputs
 *   longer than the scratch area are streamed in 2 MiB subtrees.
 * - loadKernels(module) takes build/kernels.wasm already compiled, for runtimes that forbid
 *   compiling WebAssembly at run time (Cloudflare Workers); the first call decides the source.
 * - Without a module, where build/kernels.wasm comes from is `#kernel-loader` (package.json
 *   "imports"), chosen by the resolver's conditions, not by sniffing at run time: `node` reads
 *   the file, `workerd` refuses (pass the module), `browser`/default fetch it next to the module
 *   (./kernel-loader.ts).
 * - WasmBuffer and SparseBitmap memory is reclaimed by dispose(), or by a FinalizationRegistry
 *   when the object is collected: keep the object alive while using a view of it.
 */
export { loadKernels } from './kernels.js';
export { xxh3_64, xxh3_128, xxh64, hashSegments64, hashSegments128, scanBlocks, verifyBlocks, type BlockScan } from './hash.js';
export { blake3, blake3Chunks, BLAKE3_BYTES } from './blake3.js';
export { WasmBuffer, copyRuns, isZero, equalBlocks } from './bytes.js';
export { SparseBitmap, resolve, resolveRuns } from './bitmap.js';
