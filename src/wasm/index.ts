/**
 * WebAssembly kernels (build/kernels.wasm, from assembly/) behind a typed, synchronous API.
 * Call `await loadKernels()` once; everything else is synchronous and throws
 * StrataError('unsupported') before the kernels are loaded.
 */
export { loadKernels } from './kernels.js';
export { xxh3_64, xxh3_128, xxh64, hashSegments64, hashSegments128, scanBlocks, type BlockScan } from './hash.js';
export { WasmBuffer, copyRuns, isZero, equalBlocks } from './bytes.js';
export { SparseBitmap, resolve, resolveRuns } from './bitmap.js';
