import { expect } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { prng } from '../../../src/bench/prng.js';
import { Volume } from '../../../src/volume/volume.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Fill `b` with seeded bytes; `compressible` makes it text-like. */
export function fillBlock(b: Uint8Array, seed: number, compressible = false): void {
  const r = prng(seed);
  if (compressible) {
    for (let i = 0; i < b.length; i++) b[i] = 97 + Math.floor(r() * 4);
    return;
  }
  const w = new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2);
  for (let i = 0; i < w.length; i++) w[i] = Math.floor(r() * 2 ** 32);
  for (let i = w.length * 4; i < b.length; i++) b[i] = Math.floor(r() * 256) | 1;
}

/**
 * A volume in memory where every `every`-th block holds seeded data (some blocks repeat another
 * block, some are written zero). Returns the volume and a flat model of its bytes.
 */
export async function makeVolume(size: number, blockSize: number, opts: { every?: number; seed?: number; compressible?: boolean } = {}): Promise<{ vol: Volume; model: Uint8Array; ns: MemoryNamespace }> {
  const ns = new MemoryNamespace();
  const vol = await Volume.create(ns, { size, blockSize });
  const model = new Uint8Array(size);
  const every = opts.every ?? 2;
  const seed = opts.seed ?? 1;
  const blocks = Math.ceil(size / blockSize);
  for (let b = 0; b < blocks; b += every) {
    const len = Math.min(blockSize, size - b * blockSize);
    const data = new Uint8Array(len);
    // every 7th written block repeats block 0's content (dedup inside one version); every 11th is zeros
    if (b % 11 !== 5) fillBlock(data, b % 7 === 3 ? seed * 1000 : seed * 1000 + b, opts.compressible);
    await vol.write(b * blockSize, data);
    model.set(data, b * blockSize);
  }
  return { vol, model, ns };
}

/** Rewrite `count` blocks (spread out) with new data, in volume and model; returns the changed bytes. */
export async function changeBlocks(vol: Volume, model: Uint8Array, blockSize: number, count: number, seed: number): Promise<number> {
  const blocks = Math.ceil(model.length / blockSize);
  const step = Math.max(1, Math.floor(blocks / count));
  let bytes = 0;
  for (let k = 0; k < count; k++) {
    const b = (k * step + 1) % blocks;
    const len = Math.min(blockSize, model.length - b * blockSize);
    const data = new Uint8Array(len);
    fillBlock(data, seed * 7919 + b);
    await vol.write(b * blockSize, data);
    model.set(data, b * blockSize);
    bytes += len;
  }
  return bytes;
}

export async function expectCode(p: Promise<unknown>, codes: string | string[]): Promise<void> {
  const want = Array.isArray(codes) ? codes : [codes];
  try {
    await p;
  } catch (e) {
    expect(isStrataError(e), String(e)).toBe(true);
    expect(want).toContain((e as { code: string }).code);
    return;
  }
  throw new Error(`expected an error ${want.join('|')}`);
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}
