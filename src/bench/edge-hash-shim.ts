/**
 * STOPGAP for bundles that run in workerd: hash-wasm compiles WebAssembly from bytes at run
 * time, which workerd refuses. While src/transfer/chunk-hash.ts still imports hash-wasm's
 * createBLAKE3, the workerd harness (edge-workerd.ts) resolves `hash-wasm` to this file: the same
 * BLAKE3-256 from our kernel (src/wasm/blake3.ts, loaded with the module the worker passes to
 * loadKernels). Once chunk-hash.ts uses the kernel, nothing imports hash-wasm and this is unused.
 */
import { blake3 } from '../wasm/blake3.js';

export async function createBLAKE3(bits = 256): Promise<{ init(): unknown; update(data: Uint8Array): unknown; digest(format: 'binary'): Uint8Array }> {
  if (bits !== 256) throw new Error('edge-hash-shim: only BLAKE3-256');
  let parts: Uint8Array[] = [];
  const h = {
    init() {
      parts = [];
      return h;
    },
    update(data: Uint8Array) {
      parts.push(data); // chunk-hash.ts digests right after update, before the caller can change data
      return h;
    },
    digest(_format: 'binary'): Uint8Array {
      if (parts.length === 1) return blake3(parts[0]!);
      const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
      return blake3(all);
    },
  };
  return h;
}
