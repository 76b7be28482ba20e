import { describe, expect, it } from 'vitest';
import { SparseBitmap, WasmBuffer, isZero, xxh3_64 } from '../../../src/wasm/index.js';

// Runs in its own file (own module instance): nothing has called loadKernels() here.
describe('before loadKernels()', () => {
  it('every entry point throws unsupported', () => {
    const unsupported = expect.objectContaining({ code: 'unsupported' });
    expect(() => xxh3_64(new Uint8Array(1))).toThrow(unsupported);
    expect(() => isZero(new Uint8Array(1))).toThrow(unsupported);
    expect(() => new WasmBuffer(8)).toThrow(unsupported);
    expect(() => new SparseBitmap()).toThrow(unsupported);
  });
});
