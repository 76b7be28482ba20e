/**
 * `#kernel-loader` for browsers and by default (./kernel-loader.ts): build/kernels.wasm fetched
 * next to this module. The URL is written out in full so bundlers (Vite) emit the file as an asset.
 */
import type { CompileKernels } from './kernel-loader.js';

export const compileKernels: CompileKernels = async () => {
  const url = new URL('../../build/kernels.wasm', import.meta.url);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${url.href}`);
  // compileStreaming needs the application/wasm MIME type; fall back when a server omits it.
  return response.headers.get('content-type')?.startsWith('application/wasm')
    ? WebAssembly.compileStreaming(response)
    : WebAssembly.compile(await response.arrayBuffer());
};
