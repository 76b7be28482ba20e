import { randomFillSync } from 'node:crypto';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { prng } from './prng.js';

/** The volumes the commit benchmarks consolidate: a base snapshot under an active delta, random data. */
export const BLOCK = 64 * 1024;
const BATCH = 128; // blocks per setup write

/** Write random data into a `fraction` of the blocks of `vol`, chosen by `seed`; returns bytes written. */
export async function fill(vol: Volume, fraction: number, seed: number): Promise<number> {
  const rnd = prng(seed);
  const blocks = vol.size / BLOCK;
  const buf = new Uint8Array(BATCH * BLOCK);
  let bytes = 0;
  for (let b0 = 0; b0 < blocks; b0 += BATCH) {
    const n = Math.min(BATCH, blocks - b0);
    randomFillSync(buf);
    const ios: Promise<void>[] = [];
    for (let i = 0; i < n; ) {
      if (rnd() >= fraction) {
        i++;
        continue;
      }
      let e = i + 1;
      while (e < n && rnd() < fraction) e++;
      ios.push(vol.write((b0 + i) * BLOCK, buf.subarray(i * BLOCK, e * BLOCK)));
      bytes += (e - i) * BLOCK;
      i = e + 1;
    }
    await Promise.all(ios);
  }
  await vol.flush();
  return bytes;
}

/** A volume in `dir`: base (snapshot "base") with `baseFraction` of blocks, active delta with `deltaFraction`. */
export async function makeChain(dir: string, size: number, baseFraction: number, deltaFraction: number): Promise<number> {
  const vol = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size, blockSize: BLOCK });
  try {
    await fill(vol, baseFraction, 1);
    await vol.snapshot('base');
    return await fill(vol, deltaFraction, 2);
  } finally {
    await vol.close();
  }
}
