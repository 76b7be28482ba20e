import { beforeAll, describe, expect, it } from 'vitest';
import { copyRuns, equalBlocks, isZero, loadKernels, WasmBuffer } from '../../../src/wasm/index.js';
import { Prng } from './prng.js';

beforeAll(async () => {
  await loadKernels();
});

describe('WasmBuffer and copyRuns', () => {
  it('copies runs like a reference loop of TypedArray.set / copyWithin', () => {
    const rng = new Prng(31);
    const src = new WasmBuffer(300_000), dst = new WasmBuffer(200_000);
    src.view.set(rng.bytes(src.size));
    dst.view.set(rng.bytes(dst.size));
    const ref = dst.view.slice();
    const runs: number[] = [];
    for (let i = 0; i < 200; i++) {
      const len = rng.int(3) === 0 ? rng.int(70_000) : rng.int(64);
      const d = rng.int(dst.size - len + 1), s = rng.int(src.size - len + 1);
      runs.push(d, s, len);
      ref.set(src.view.subarray(s, s + len), d);
    }
    copyRuns(dst, src, Uint32Array.from(runs));
    expect(Buffer.from(dst.view).equals(Buffer.from(ref))).toBe(true);
    // Within one buffer (overlapping runs behave like copyWithin).
    const same = dst.view.slice();
    same.copyWithin(10, 0, 5000);
    copyRuns(dst, dst, Uint32Array.of(10, 0, 5000));
    expect(Buffer.from(dst.view).equals(Buffer.from(same))).toBe(true);
    src.dispose(); dst.dispose();
  });

  it('checks every run before copying anything', () => {
    const src = new WasmBuffer(100), dst = new WasmBuffer(100);
    src.view.fill(1);
    for (const bad of [[0, 0, 101], [99, 0, 2], [0, 99, 2], [0xFFFFFFFF, 0, 1], [0, 0xFFFFFFFF, 2]]) {
      expect(() => copyRuns(dst, src, Uint32Array.of(0, 0, 10, ...bad))).toThrow(expect.objectContaining({ code: 'out-of-range' }));
      expect(dst.view.every((x) => x === 0)).toBe(true);
    }
    expect(() => copyRuns(dst, src, Uint32Array.of(1, 2))).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    copyRuns(dst, src, new Uint32Array(0));
    src.dispose();
    expect(() => copyRuns(dst, src, Uint32Array.of(0, 0, 1))).toThrow(expect.objectContaining({ code: 'closed' }));
    expect(() => src.view).toThrow(expect.objectContaining({ code: 'closed' }));
    dst.dispose();
    dst.dispose(); // idempotent
  });

  it('many runs (more than one batch)', () => {
    const src = new WasmBuffer(1 << 20), dst = new WasmBuffer(1 << 20);
    src.view.set(new Prng(32).bytes(src.size));
    const n = 200_000;
    const runs = new Uint32Array(n * 3);
    for (let i = 0; i < n; i++) { runs[3 * i] = i * 5; runs[3 * i + 1] = (i * 7) % 1_000_000; runs[3 * i + 2] = 5; }
    copyRuns(dst, src, runs);
    const v = dst.view, s = src.view;
    for (const i of [0, 1, 174_761, 174_762, n - 1]) for (let j = 0; j < 5; j++) expect(v[i * 5 + j]).toBe(s[((i * 7) % 1_000_000) + j]);
    runs[3 * (n - 1)] = (1 << 20) - 2; // the last run is out of bounds: nothing at all is copied
    const fresh = new WasmBuffer(1 << 20);
    expect(() => copyRuns(fresh, src, runs)).toThrow(expect.objectContaining({ code: 'out-of-range' }));
    expect(fresh.view.every((x) => x === 0)).toBe(true);
    src.dispose(); dst.dispose(); fresh.dispose();
  });

  it('new buffers are zeroed even when memory is reused; sizes are validated', () => {
    const a = new WasmBuffer(4096);
    a.view.fill(0xAB);
    a.dispose();
    const b = new WasmBuffer(4096);
    expect(b.view.every((x) => x === 0)).toBe(true);
    b.dispose();
    expect(() => new WasmBuffer(-1)).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(() => new WasmBuffer(2 ** 40)).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(new WasmBuffer(0).view.length).toBe(0);
  });
});

describe('isZero', () => {
  it('a single nonzero byte at every position of small blocks, aligned and not', () => {
    for (const n of [0, 1, 15, 16, 17, 63, 64, 255, 256, 257, 1000]) {
      for (const off of [0, 1, 5]) {
        const buf = new Uint8Array(n + off);
        const d = buf.subarray(off);
        expect(isZero(d)).toBe(true);
        for (let i = 0; i < n; i++) {
          d[i] = 1 << (i % 8);
          expect(isZero(d), `n ${n} off ${off} at ${i}`).toBe(false);
          d[i] = 0;
        }
      }
    }
  });

  it('large inputs (several staged chunks) and data in WASM memory', () => {
    const d = new Uint8Array(5 * 1024 * 1024 + 3);
    expect(isZero(d)).toBe(true);
    for (const i of [40, 262_143, 262_144, 3_000_000, d.length - 1]) {
      d[i] = 1;
      expect(isZero(d), `at ${i}`).toBe(false);
      d[i] = 0;
    }
    const w = new WasmBuffer(70_000);
    expect(isZero(w.view)).toBe(true);
    w.view[69_999] = 2;
    expect(isZero(w.view)).toBe(false);
    expect(isZero(w.view.subarray(0, 69_999))).toBe(true);
    w.dispose();
  });
});

describe('equalBlocks', () => {
  it('a single differing byte at every position of a small block', () => {
    const bs = 300;
    const a = new Prng(41).bytes(bs * 3);
    for (let i = 0; i < bs; i++) {
      const b = a.slice();
      b[bs + i] ^= 0x40;
      expect([...equalBlocks(a, b, bs)], `at ${i}`).toEqual([1, 0, 1]);
    }
  });

  it('random blocks vs a reference, batches, short last block, huge blocks, WASM buffers', () => {
    const rng = new Prng(42);
    for (const bs of [1, 8, 100, 4096, 65536, 1_500_000]) {
      const n = Math.min(bs * 40, 6_000_000) + (bs > 1 ? 7 : 0);
      const a = rng.bytes(n);
      const b = a.slice();
      const count = Math.ceil(n / bs);
      for (let i = 0; i < count; i += 1 + rng.int(3)) b[Math.min(n - 1, i * bs + rng.int(bs))] ^= 1;
      const want = new Uint8Array(count);
      for (let i = 0; i < count; i++) want[i] = Buffer.from(a.subarray(i * bs, (i + 1) * bs)).equals(Buffer.from(b.subarray(i * bs, (i + 1) * bs))) ? 1 : 0;
      expect([...equalBlocks(a, b, bs)], `bs ${bs}`).toEqual([...want]);
      if (bs === 65536 || bs === 1_500_000) {
        const wa = new WasmBuffer(n), wb = new WasmBuffer(n);
        wa.view.set(a); wb.view.set(b);
        expect([...equalBlocks(wa.view, wb.view, bs)]).toEqual([...want]);
        expect([...equalBlocks(wa.view, b, bs)]).toEqual([...want]);
        wa.dispose(); wb.dispose();
      }
    }
    expect(() => equalBlocks(new Uint8Array(4), new Uint8Array(5), 2)).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
  });
});
