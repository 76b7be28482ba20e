import { beforeAll, describe, expect, it } from 'vitest';
import { createXXHash128, createXXHash3 } from 'hash-wasm';
import xxhash from 'xxhash-wasm';
import { hashSegments128, hashSegments64, loadKernels, scanBlocks, verifyBlocks, WasmBuffer, xxh3_128, xxh3_64, xxh64 } from '../../../src/wasm/index.js';
import { isStrataError } from '../../../src/errors.js';
import { Prng } from './prng.js';

const SEED = 0x9c3b_7f21_04d5_e8a6n;
type Hasher = Awaited<ReturnType<typeof createXXHash3>>;
const hashers = new Map<string, Hasher>();
let h64Raw: (d: Uint8Array, seed?: bigint) => bigint;

async function hasher(kind: '64' | '128', seed: bigint): Promise<Hasher> {
  const key = kind + seed;
  let h = hashers.get(key);
  if (!h) {
    const lo = Number(seed & 0xffffffffn), hi = Number(seed >> 32n);
    h = kind === '64' ? await createXXHash3(lo, hi) : await createXXHash128(lo, hi);
    hashers.set(key, h);
  }
  return h;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

async function ref64(d: Uint8Array, seed: bigint): Promise<bigint> {
  const h = await hasher('64', seed);
  h.init(); h.update(d);
  return BigInt('0x' + h.digest('hex'));
}

async function ref128(d: Uint8Array, seed: bigint): Promise<string> {
  const h = await hasher('128', seed);
  h.init(); h.update(d);
  return h.digest('hex');
}

async function checkLength(d: Uint8Array): Promise<void> {
  for (const seed of [0n, SEED]) {
    expect(xxh3_64(d, seed), `xxh3_64 len ${d.length} seed ${seed}`).toBe(await ref64(d, seed));
    expect(hex(xxh3_128(d, seed)), `xxh3_128 len ${d.length} seed ${seed}`).toBe(await ref128(d, seed));
  }
}

beforeAll(async () => {
  await loadKernels();
  ({ h64Raw } = await xxhash());
});

describe('before loading', () => {
  it('loadKernels is memoised', async () => {
    const a = loadKernels(), b = loadKernels();
    expect(a).toBe(b);
    await a;
  });
});

describe('XXH3 equals hash-wasm', () => {
  const rng = new Prng(1);
  const data = rng.bytes(1 << 20);

  it('every length 0..256', async () => {
    for (let n = 0; n <= 256; n++) await checkLength(data.subarray(0, n));
  });

  it('lengths around internal boundaries up to 1 MiB', async () => {
    const lengths = new Set<number>();
    for (const b of [16, 128, 240, 64, 1024, 2048, 4096, 65536, 1 << 20]) {
      for (let d = -3; d <= 3; d++) if (b + d >= 0 && b + d <= data.length) lengths.add(b + d);
    }
    for (let k = 1; k <= 24; k++) for (const d of [-65, -64, -63, -1, 0, 1, 63, 64, 65]) lengths.add(k * 1024 + d);
    for (let i = 0; i < 60; i++) lengths.add(rng.int(data.length + 1));
    for (const n of lengths) await checkLength(data.subarray(0, n));
  });

  it('unaligned inputs', async () => {
    for (const off of [1, 3, 7, 13]) for (const n of [0, 5, 17, 200, 241, 1500, 5000]) await checkLength(data.subarray(off, off + n));
  });

  it('multi-MiB inputs (streamed through scratch)', async () => {
    const big = new Prng(2).bytes(9 * 1024 * 1024 + 77);
    for (const n of [3 * 1024 * 1024, 3 * 1024 * 1024 + 1, 2 * 1024 * 1024 + 1024 + 30, big.length]) await checkLength(big.subarray(0, n));
  });

  it('64 MiB input', async () => {
    const big = new Uint8Array(64 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4093) big[i] = i & 255;
    expect(xxh3_64(big)).toBe(await ref64(big, 0n));
    expect(hex(xxh3_128(big, SEED))).toBe(await ref128(big, SEED));
  });

  it('data already in WASM memory is hashed in place', async () => {
    const b = new WasmBuffer(5000);
    b.view.set(data.subarray(0, 5000));
    expect(xxh3_64(b.view, SEED)).toBe(await ref64(data.subarray(0, 5000), SEED));
    expect(hex(xxh3_128(b.view.subarray(3, 4003)))).toBe(await ref128(data.subarray(3, 4003), 0n));
    b.dispose();
  });
});

describe('XXH64 equals xxhash-wasm', () => {
  it('lengths 0..300, boundaries and multi-MiB', () => {
    const rng = new Prng(3);
    const data = rng.bytes(5 * 1024 * 1024 + 13);
    const lengths = [...Array(301).keys(), 1023, 1024, 1025, 65536, 65537, 2 * 1024 * 1024 + 31, 2 * 1024 * 1024 + 32, data.length];
    for (const n of lengths) {
      const d = data.subarray(0, n);
      expect(xxh64(d), `len ${n}`).toBe(h64Raw(d, 0n));
      expect(xxh64(d, SEED), `len ${n} seeded`).toBe(h64Raw(d, SEED));
    }
  });
});

describe('segment hashing', () => {
  const rng = new Prng(4);

  it('hashSegments64/128 equal per-segment hashes, including a short last segment', () => {
    for (const seg of [1, 7, 16, 100, 240, 241, 1024, 4096, 65536, 3 * 1024 * 1024]) {
      for (const n of [0, seg, 3 * seg, 5 * seg - 1, Math.min(10 * seg + 3, 8 * 1024 * 1024 + 5)]) {
        const d = rng.bytes(n);
        const h64s = hashSegments64(d, seg);
        const h128s = hashSegments128(d, seg);
        const count = Math.ceil(n / seg);
        expect(h64s.length).toBe(count);
        expect(h128s.length).toBe(count * 16);
        for (let i = 0; i < count; i++) {
          const s = d.subarray(i * seg, Math.min(n, (i + 1) * seg));
          expect(h64s[i], `seg ${seg} n ${n} i ${i}`).toBe(xxh3_64(s));
          expect(hex(h128s.subarray(i * 16, i * 16 + 16))).toBe(hex(xxh3_128(s)));
        }
      }
    }
  });

  it('batches larger than the scratch area, with seeds and caller-provided outputs', () => {
    const seg = 4096;
    const d = rng.bytes(seg * 3000 + 17);
    const count = 3001;
    const out64 = new BigUint64Array(count + 2);
    const out128 = new Uint8Array(count * 16);
    expect(hashSegments64(d, seg, out64, SEED)).toBe(out64);
    hashSegments128(d, seg, out128, SEED);
    for (const i of [0, 1, 511, 512, 513, 1999, 2047, 2048, 2999, 3000]) {
      const s = d.subarray(i * seg, Math.min(d.length, (i + 1) * seg));
      expect(out64[i]).toBe(xxh3_64(s, SEED));
      expect(hex(out128.subarray(i * 16, i * 16 + 16))).toBe(hex(xxh3_128(s, SEED)));
    }
  });

  it('a 16 MiB segment', () => {
    const d = new Uint8Array(16 * 1024 * 1024 * 2 + 5);
    for (let i = 0; i < d.length; i += 999) d[i] = i;
    const h = hashSegments64(d, 16 * 1024 * 1024);
    const h2 = hashSegments128(d, 16 * 1024 * 1024);
    for (let i = 0; i < 3; i++) {
      const s = d.subarray(i * 16 * 1024 * 1024, (i + 1) * 16 * 1024 * 1024);
      expect(h[i]).toBe(xxh3_64(s));
      expect(hex(h2.subarray(i * 16, i * 16 + 16))).toBe(hex(xxh3_128(s)));
    }
  });

  it('segments in WASM memory', () => {
    const b = new WasmBuffer(65536 * 40 + 100);
    b.view.set(rng.bytes(b.size));
    const h = hashSegments64(b.view, 65536);
    expect(h.length).toBe(41);
    expect(h[40]).toBe(xxh3_64(b.view.subarray(65536 * 40)));
    expect(h[7]).toBe(xxh3_64(b.view.slice(65536 * 7, 65536 * 8)));
    b.dispose();
  });

  it('rejects bad segment sizes', () => {
    for (const s of [0, -1, 1.5, NaN, 2 ** 31]) {
      expect(() => hashSegments64(new Uint8Array(4), s)).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    }
    expect(() => hashSegments64(new Uint8Array(40), 4, new BigUint64Array(3))).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
  });
});

describe('scanBlocks', () => {
  const rng = new Prng(5);

  function check(d: Uint8Array, bs: number): void {
    const r = scanBlocks(d, bs);
    const count = d.length / bs;
    expect(r.hashes.length).toBe(count * 16);
    for (let i = 0; i < count; i++) {
      const b = d.subarray(i * bs, (i + 1) * bs);
      expect(hex(r.hashes.subarray(i * 16, i * 16 + 16)), `bs ${bs} block ${i}`).toBe(hex(xxh3_128(b)));
      expect(r.zero[i], `bs ${bs} block ${i}`).toBe(b.every((x) => x === 0) ? 1 : 0);
    }
  }

  it('hashes and zero flags per block, zero and nonzero mixed', () => {
    for (const bs of [1, 16, 200, 512, 4096, 65536]) {
      const count = Math.max(3, Math.min(200, Math.floor((8 << 20) / bs)));
      const d = new Uint8Array(count * bs);
      for (let i = 0; i < count; i++) {
        const kind = rng.int(4);
        if (kind === 1) d.set(rng.bytes(bs), i * bs);
        else if (kind === 2) d[i * bs + rng.int(bs)] = 1 + rng.int(255);
        else if (kind === 3) d[i * bs + bs - 1] = 0x80;
      }
      check(d, bs);
    }
  });

  it('batches beyond the scratch area and blocks larger than it', () => {
    const d = new Uint8Array(4096 * 2000);
    for (let i = 0; i < 2000; i += 3) d.set(rng.bytes(64), i * 4096 + 100);
    check(d, 4096);
    const big = new Uint8Array(3 * 3 * 1024 * 1024);
    big[3 * 1024 * 1024 + 5] = 1;
    big[big.length - 1] = 9;
    check(big, 3 * 1024 * 1024);
  });

  it('rejects a length that is not a multiple of the block size', () => {
    let err: unknown;
    try { scanBlocks(new Uint8Array(10), 4); } catch (e) { err = e; }
    expect(isStrataError(err, 'invalid-argument')).toBe(true);
  });
});

describe('verifyBlocks', () => {
  beforeAll(() => loadKernels());

  it('finds the first block whose XXH3-128 differs (hash-wasm as the reference), any size, in JS or WASM memory', async () => {
    const rng = new Prng(0x5eed);
    for (const bs of [512, 4096, 65536, 1 << 20]) {
      const count = bs >= 1 << 20 ? 3 : 37;
      const data = rng.bytes(bs * count - (bs >> 1)); // the last block is short
      const expected = new Uint8Array(count * 16);
      const h = await hasher('128', 0n);
      for (let i = 0; i < count; i++) {
        h.init();
        h.update(data.subarray(i * bs, Math.min(data.length, (i + 1) * bs)));
        expected.set(Buffer.from(h.digest('hex'), 'hex'), i * 16);
      }
      expect(verifyBlocks(data, bs, expected)).toBe(-1);
      const inWasm = new WasmBuffer(data.length);
      inWasm.view.set(data);
      expect(verifyBlocks(inWasm.view, bs, expected)).toBe(-1);
      for (const bad of [0, count >> 1, count - 1]) {
        const flipped = data.slice();
        flipped[Math.min(flipped.length - 1, bad * bs + rng.int(bs >> 1))] ^= 0x40;
        expect(verifyBlocks(flipped, bs, expected)).toBe(bad);
        inWasm.view.set(flipped);
        expect(verifyBlocks(inWasm.view, bs, expected)).toBe(bad);
      }
      const wrongHash = expected.slice();
      wrongHash[(count - 2) * 16 + 15] ^= 1;
      expect(verifyBlocks(data, bs, wrongHash)).toBe(count - 2);
      inWasm.dispose();
    }
  });

  it('refuses an expected array shorter than the blocks', async () => {
    let err: unknown;
    try {
      verifyBlocks(new Uint8Array(8192), 4096, new Uint8Array(16));
    } catch (e) {
      err = e;
    }
    expect(isStrataError(err, 'invalid-argument')).toBe(true);
  });
});
