/**
 * `stratadisk/edge` under the `workerd` / `worker` export conditions (wrangler, the Cloudflare
 * Vite plugin): the Workers module itself, so a worker entry can be the one line
 *   export { default } from 'stratadisk/edge';
 * workerd refuses to compile WebAssembly from bytes at run time, so the BLAKE3/XXH3 kernels come
 * in as a module import: wrangler's default rules bundle `*.wasm` as CompiledWasm, and the
 * import below is a WebAssembly.Module that createEdgeWorker hands to loadKernels().
 */
// @ts-ignore -- a CompiledWasm module of the bundler (wrangler), not a TypeScript module
import kernels from '../../build/kernels.wasm';
import { R2ObjectStore, type R2BucketLike } from '../transfer/r2-objects.js';
import { createEdgeWorker } from './worker.js';

export * from './index.js';

export default createEdgeWorker({
  kernels: kernels as WebAssembly.Module,
  objects: (bucket, where) => new R2ObjectStore(bucket as R2BucketLike, where),
});
