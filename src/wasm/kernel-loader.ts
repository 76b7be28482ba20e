/**
 * What `#kernel-loader` is (package.json "imports"): the one piece of the kernel loader that
 * differs between platforms, chosen by the resolver's conditions, never by sniffing at run time:
 * - `node` (Node, Deno, Bun; Vite's SSR and vitest's node project): ./compile-node.ts reads
 *   build/kernels.wasm from disk;
 * - `workerd` (wrangler, the Cloudflare Vite plugin, our rolldown bundle for miniflare):
 *   ./compile-workerd.ts, which refuses, since workerd compiles no WebAssembly from bytes (the
 *   worker passes the module the platform compiled to loadKernels(module));
 * - `browser` and anything else: ./compile-fetch.ts fetches build/kernels.wasm next to the
 *   module (a bundler such as Vite sees `new URL('…/kernels.wasm', import.meta.url)` and emits
 *   the file as an asset).
 * Each variant exports `compileKernels` of this type.
 */
export type CompileKernels = () => Promise<WebAssembly.Module>;
