/**
 * `#kernel-loader` under the `workerd` condition (./kernel-loader.ts): workerd refuses to compile
 * WebAssembly from bytes at run time, so there is nothing to load here; the worker imports
 * build/kernels.wasm as a module (compiled by the platform) and passes it to loadKernels(module).
 */
import { StrataError } from '../errors.js';
import type { CompileKernels } from './kernel-loader.js';

export const compileKernels: CompileKernels = async () => {
  throw new StrataError('unsupported', 'workerd compiles no WebAssembly from bytes: import build/kernels.wasm as a module (wrangler bundles *.wasm as CompiledWasm) and pass it to loadKernels(module) before anything else loads the kernels; stratadisk/edge does this.');
};
