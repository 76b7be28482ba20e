import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { blake3, loadKernels, xxh3_64 } from '../../../src/wasm/index.js';

// Runs in its own file (own module instance), so the first loadKernels() call is made here.
// Cloudflare Workers / workerd forbid compiling WebAssembly from bytes at run time: a worker
// imports build/kernels.wasm as a module (compiled at deploy time) and passes it in.
describe('loadKernels(module): kernels given precompiled', () => {
  const file = new URL('../../../build/kernels.wasm', import.meta.url);

  it('rejects a source that is not a WebAssembly.Module, before anything is loaded', async () => {
    await expect(loadKernels(readFileSync(file) as unknown as WebAssembly.Module)).rejects.toMatchObject({ code: 'invalid-argument' });
    expect(() => xxh3_64(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'unsupported' }));
  });

  it('rejects a module that is not build/kernels.wasm, naming what it lacks', async () => {
    const empty = await WebAssembly.compile(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
    const err = await loadKernels(empty).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'unsupported', message: expect.stringContaining('blake3_hash') });
    expect(() => xxh3_64(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'unsupported' }));
  });

  it('instantiates the given module without compiling anything itself', async () => {
    const module = await WebAssembly.compile(readFileSync(file));
    const compile = vi.spyOn(WebAssembly, 'compile');
    const compileStreaming = vi.spyOn(WebAssembly, 'compileStreaming');
    try {
      const p = loadKernels(module);
      await p;
      expect(compile).not.toHaveBeenCalled();
      expect(compileStreaming).not.toHaveBeenCalled();
      // Memoised: later calls (as library code makes them, without a source) share the load.
      expect(loadKernels()).toBe(p);
      expect(loadKernels(module)).toBe(p);
      expect(compile).not.toHaveBeenCalled();
    } finally {
      compile.mockRestore();
      compileStreaming.mockRestore();
    }
    expect(xxh3_64(new Uint8Array(0))).toBe(0x2d06800538d394c2n);
    expect(Buffer.from(blake3(new Uint8Array(0))).toString('hex')).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  });
});
