import { describe, expect, it } from 'vitest';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';

// The one-block fast path of Chain.readInto (slot lookups) must agree with the multi-block path
// (resolveRuns): every block read alone equals the same bytes read as part of a wide range,
// over a chain with data, known-zero and absent blocks in every layer.
describe('Chain read paths agree', () => {
  it('single-block reads equal slices of whole-range reads through a 4-layer chain', async () => {
    const bs = 4096;
    const blocks = 96;
    const rng = new Rng(7);
    const vol = await Volume.create(new MemoryNamespace(), { size: blocks * bs, blockSize: bs });
    const expected = new Uint8Array(blocks * bs);
    for (let layer = 0; layer < 4; layer++) {
      if (layer > 0) await vol.snapshot(`s${layer}`);
      for (let k = 0; k < 30; k++) {
        const b = rng.int(blocks);
        const data = new Uint8Array(bs);
        const kind = rng.int(4);
        if (kind > 0) for (let i = 0; i < bs; i += 97) data[i] = 1 + rng.int(255); // else all zero (known-zero or absent)
        await vol.write(b * bs, data);
        expected.set(data, b * bs);
      }
    }
    const whole = await vol.read(0, blocks * bs);
    expect(Buffer.compare(whole, expected)).toBe(0);
    for (let b = 0; b < blocks; b++) {
      // whole block, and sub-block pieces at odd offsets
      expect(Buffer.compare(await vol.read(b * bs, bs), expected.subarray(b * bs, (b + 1) * bs))).toBe(0);
      const at = b * bs + 123;
      expect(Buffer.compare(await vol.read(at, 1000), expected.subarray(at, at + 1000))).toBe(0);
    }
    // ranges that straddle blocks still go through resolveRuns
    for (let k = 0; k < 50; k++) {
      const at = rng.int(blocks * bs - 3 * bs);
      const len = 1 + rng.int(3 * bs);
      expect(Buffer.compare(await vol.read(at, len), expected.subarray(at, at + len))).toBe(0);
    }
    await vol.close();
  });
});
