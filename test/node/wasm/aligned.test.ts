import { describe, expect, it } from 'vitest';
import { alignedBytes, isPageAligned, MAX_ALIGNED, PAGE } from '../../../src/wasm/aligned.js';

describe('aligned I/O buffers', () => {
  it('are zero-filled, of the asked size, and known page-aligned (subarrays only at page offsets)', () => {
    const b = alignedBytes(3 * PAGE + 5);
    expect(b.length).toBe(3 * PAGE + 5);
    expect(b.every((x) => x === 0)).toBe(true);
    expect(isPageAligned(b)).toBe(true);
    expect(isPageAligned(b.subarray(PAGE))).toBe(true);
    expect(isPageAligned(b.subarray(512))).toBe(false);
    expect(isPageAligned(new Uint8Array(PAGE))).toBe(false);
    expect(isPageAligned(new Uint8Array(new ArrayBuffer(2 * PAGE), PAGE))).toBe(false);
  });

  it('refuse sizes out of bounds with invalid-argument', () => {
    for (const n of [-1, 1.5, MAX_ALIGNED + 1, Number.NaN]) expect(() => alignedBytes(n)).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(alignedBytes(0).length).toBe(0);
  });
});
