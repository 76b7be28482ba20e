/** `#kernel-loader` under the `node` condition (./kernel-loader.ts): build/kernels.wasm read from disk. */
import { readFile } from 'node:fs/promises';
import type { CompileKernels } from './kernel-loader.js';

export const compileKernels: CompileKernels = async () => WebAssembly.compile(await readFile(new URL('../../build/kernels.wasm', import.meta.url)));
