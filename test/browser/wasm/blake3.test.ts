import { expect, it } from 'vitest';
import { createBLAKE3 } from 'hash-wasm';
import { blake3, blake3Chunks, loadKernels, WasmBuffer } from '../../../src/wasm/index.js';
import vectors from '../../fixtures/blake3/test-vectors.json' with { type: 'json' };

// The same kernel in real Chromium (V8's WebAssembly SIMD in a browser build): the official
// vectors, hash-wasm across chunk and subtree boundaries, and blake3Chunks per chunk.
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

function seeded(n: number, seed: number): Uint8Array {
  const d = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    d[i] = x;
  }
  return d;
}

it('BLAKE3 matches the official vectors, hash-wasm and per-chunk hashes in Chromium', async () => {
  expect(navigator.userAgent).toContain('Chrome');
  await loadKernels();
  const peer = await createBLAKE3();
  const reference = (d: Uint8Array): string => { peer.init(); peer.update(d); return peer.digest('hex'); };

  for (const c of vectors.cases) {
    const d = new Uint8Array(c.input_len);
    for (let i = 0; i < d.length; i++) d[i] = i % 251;
    expect(hex(blake3(d)), `vector ${c.input_len}`).toBe(c.hash);
  }

  const big = seeded(4 * 1024 * 1024 + 3, 0xb3b3);
  for (const n of [0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 65535, 65536, 65537, 2 ** 21 - 1, 2 ** 21, 2 ** 21 + 1, 4 * 1024 * 1024 + 3]) {
    expect(hex(blake3(big.subarray(0, n))), `len ${n}`).toBe(reference(big.subarray(0, n)));
  }

  // 64 KiB chunks (four BLAKE3 chunks per lane set, then parents) and slices of one BLAKE3
  // chunk or less (four slices per lane set), each with a short tail.
  for (const size of [64 * 1024, 1024, 100]) {
    const d = big.subarray(0, (size > 1024 ? 20 : 41) * size + 77);
    const got = blake3Chunks(d, size);
    const w = new WasmBuffer(d.length);
    w.view.set(d);
    expect(hex(blake3Chunks(w.view, size))).toBe(hex(got));
    w.dispose();
    for (let i = 0; i * size < d.length; i++) {
      expect(hex(got.subarray(i * 32, i * 32 + 32)), `size ${size} chunk ${i}`).toBe(reference(d.subarray(i * size, (i + 1) * size)));
    }
  }
});
