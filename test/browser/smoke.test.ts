import { expect, it } from 'vitest';
import { loadKernels, xxh3_64 } from '../../src/wasm/index.js';

it('runs in real Chromium with WASM kernels and cross-origin isolation', async () => {
  expect(navigator.userAgent).toContain('Chrome');
  expect(crossOriginIsolated).toBe(true);
  await loadKernels();
  expect(xxh3_64(new Uint8Array(0))).toBe(0x2d06800538d394c2n);
});
