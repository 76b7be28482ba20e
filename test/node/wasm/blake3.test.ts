import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBLAKE3 } from 'hash-wasm';
import { blake3, blake3Chunks, BLAKE3_BYTES, loadKernels, WasmBuffer } from '../../../src/wasm/index.js';
import { Prng } from './prng.js';

/** The official vectors (hash mode, first 32 bytes), from BLAKE3-team/BLAKE3 test_vectors.json. */
const vectors = JSON.parse(readFileSync(new URL('../../fixtures/blake3/test-vectors.json', import.meta.url), 'utf8')) as { cases: { input_len: number; hash: string }[] };

const KiB = 1024, MiB = 1024 * 1024;
type Hasher = Awaited<ReturnType<typeof createBLAKE3>>;
let peer: Hasher;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
function reference(d: Uint8Array): string {
  peer.init();
  peer.update(d);
  return peer.digest('hex');
}
/** The vectors' input: byte i is i % 251. */
function pattern(n: number): Uint8Array {
  const d = new Uint8Array(n);
  for (let i = 0; i < n; i++) d[i] = i % 251;
  return d;
}

beforeAll(async () => {
  await loadKernels();
  peer = await createBLAKE3();
});

describe('BLAKE3 official test vectors', () => {
  it(`matches all ${vectors.cases.length} cases (JS memory, in place, and as a single chunk)`, () => {
    expect(vectors.cases.length).toBeGreaterThanOrEqual(35);
    for (const c of vectors.cases) {
      const d = pattern(c.input_len);
      expect(hex(blake3(d)), `len ${c.input_len}`).toBe(c.hash);
      const w = new WasmBuffer(d.length);
      w.view.set(d);
      expect(hex(blake3(w.view)), `len ${c.input_len} in place`).toBe(c.hash);
      w.dispose();
      if (c.input_len > 0) expect(hex(blake3Chunks(d, c.input_len)), `len ${c.input_len} as one chunk`).toBe(c.hash);
    }
  });

  it('hash-wasm agrees with the vectors (the reference used below)', () => {
    for (const c of vectors.cases) expect(reference(pattern(c.input_len))).toBe(c.hash);
  });
});

describe('BLAKE3 equals hash-wasm', () => {
  it('for every length 0..2048, at varying offsets', () => {
    const src = new Prng(0xb1a3e3).bytes(2048 + 16);
    for (let n = 0; n <= 2048; n++) {
      const off = n % 13;
      const d = src.subarray(off, off + n);
      expect(hex(blake3(d)), `len ${n}`).toBe(reference(d));
    }
  });

  // Chunk (1 KiB) and 4-chunk boundaries, powers of two +-1 up to 4 MiB (the subtree and
  // scratch size is 2 MiB, so these cross the streamed path too), seeded random lengths, and a
  // few longer inputs that merge and fold several 2 MiB subtrees.
  const lengths = new Set<number>([1023, 1024, 1025, 2047, 2048, 2049, 3071, 3072, 3073, 4095, 4096, 4097, 5119, 5120, 5121, 16383, 16385]);
  for (let p = 2 ** 11; p <= 4 * MiB; p *= 2) for (const n of [p - 1, p, p + 1]) lengths.add(n);
  const rnd = new Prng(0x5eed_b3);
  for (let i = 0; i < 8; i++) lengths.add(1 + rnd.int(4 * MiB));
  for (const n of [6 * MiB + 5, 8 * MiB, 8 * MiB + 1, 10 * MiB + 3 * KiB + 7]) lengths.add(n);
  const big = new Prng(0xdecaf).bytes(10 * MiB + 4 * KiB);

  it(`for ${lengths.size} boundary and random lengths up to 10 MiB (JS memory, streamed past 2 MiB)`, () => {
    for (const n of [...lengths].sort((a, b) => a - b)) {
      const d = big.subarray(0, n);
      expect(hex(blake3(d)), `len ${n}`).toBe(reference(d));
    }
  });

  it('for the same lengths hashed in place in a WasmBuffer', () => {
    const w = new WasmBuffer(big.length);
    w.view.set(big);
    for (const n of [...lengths].sort((a, b) => a - b)) {
      expect(hex(blake3(w.view.subarray(3, 3 + n))), `len ${n}`).toBe(reference(big.subarray(3, 3 + n)));
    }
    w.dispose();
  });

  it('returns a fresh 32-byte array each call', () => {
    const a = blake3(new Uint8Array(5)), b = blake3(new Uint8Array(5));
    expect(a.length).toBe(BLAKE3_BYTES);
    expect(a).not.toBe(b);
    a[0]! ^= 1;
    expect(hex(b)).toBe(reference(new Uint8Array(5)));
  });
});

describe('blake3Chunks', () => {
  const data = new Prng(0xc4c4).bytes(3 * MiB + 5 * KiB + 3);

  function perChunk(d: Uint8Array, size: number): string[] {
    const out: string[] = [];
    for (let o = 0; o < d.length; o += size) out.push(reference(d.subarray(o, o + size)));
    return out;
  }
  /** Asserts equal lists of hashes, naming the first difference (a full diff of thousands is slow). */
  function expectSame(got: string[], want: string[], what: string): void {
    expect(got.length, `${what}: count`).toBe(want.length);
    const i = got.findIndex((h, k) => h !== want[k]);
    expect(i === -1 ? 'all equal' : `chunk ${i}: ${got[i]} != ${want[i]}`, what).toBe('all equal');
  }
  function split(h: Uint8Array): string[] {
    const out: string[] = [];
    for (let o = 0; o < h.length; o += 32) out.push(hex(h.subarray(o, o + 32)));
    return out;
  }

  // Sizes below one BLAKE3 chunk, at and around it, several chunks, the 64 KiB block size, and
  // one larger than the scratch area (streamed per chunk); each run ends with a short tail.
  for (const size of [1, 63, 64, 65, 1000, 1024, 1025, 3 * KiB, 4 * KiB, 5 * KiB + 1, 64 * KiB, 256 * KiB, 2 * MiB, 2 * MiB + 1, 3 * MiB]) {
    it(`equals hash-wasm per ${size}-byte chunk, and blake3 of each chunk (short tail)`, () => {
      const d = size <= 64 ? data.subarray(0, 300 * size + 7) : data;
      const got = split(blake3Chunks(d, size));
      const want = perChunk(d, size);
      expect(got.length).toBe(Math.ceil(d.length / size));
      if (size > 1) expect(d.length % size).not.toBe(0);
      expectSame(got, want, `${size}-byte chunks`);
      for (const i of [0, got.length - 1]) expect(got[i]).toBe(hex(blake3(d.subarray(i * size, (i + 1) * size))));
    });
  }

  it('is the same in place (WasmBuffer view), into a given out, and for an exact multiple', () => {
    const size = 64 * KiB;
    const d = data.subarray(0, 40 * size);
    const want = perChunk(d, size);
    const w = new WasmBuffer(d.length);
    w.view.set(d);
    expectSame(split(blake3Chunks(w.view, size)), want, 'in place');
    w.dispose();
    const out = new Uint8Array(40 * 32 + 10).fill(0xee);
    expect(blake3Chunks(d, size, out)).toBe(out);
    expectSame(split(out.subarray(0, 40 * 32)), want, 'into out');
    expect([...out.subarray(40 * 32)].every((b) => b === 0xee)).toBe(true);
  });

  it('hashes more chunks than one kernel call returns (several batches)', () => {
    const d = data.subarray(0, 3 * MiB + 100);
    expectSame(split(blake3Chunks(d, 1024)), perChunk(d, 1024), '3073 chunks > 2048 per call');
  });

  it('returns no hashes for empty data', () => {
    expect(blake3Chunks(new Uint8Array(0), 4096).length).toBe(0);
  });

  it('rejects bad arguments with invalid-argument', () => {
    const bad = expect.objectContaining({ code: 'invalid-argument' });
    expect(() => blake3Chunks(new Uint8Array(10), 0)).toThrow(bad);
    expect(() => blake3Chunks(new Uint8Array(10), 1.5)).toThrow(bad);
    expect(() => blake3Chunks(new Uint8Array(10), 2 ** 31)).toThrow(bad);
    expect(() => blake3Chunks(new Uint8Array(10), 4, new Uint8Array(95))).toThrow(bad);
    expect(() => blake3Chunks([1, 2] as unknown as Uint8Array, 4)).toThrow(bad);
    expect(() => blake3('abc' as unknown as Uint8Array)).toThrow(bad);
  });
});
