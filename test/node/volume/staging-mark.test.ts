/** The mark of a staged change (staging.mark): only a whole, valid record counts; anything else is ignored. */
import { describe, expect, it } from 'vitest';
import { MemoryBacking, MemoryNamespace } from '../../../src/store/memory.js';
import { STAGING_MARK, readStagingMark, removeStagingMark, writeStagingMark } from '../../../src/volume/staging-mark.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { Rng } from '../helpers/random.js';

describe('staging mark', () => {
  it('round-trips, and is removed', async () => {
    await loadKernels();
    const ns = new MemoryNamespace();
    expect(await readStagingMark(ns)).toBeNull();
    await writeStagingMark(ns, 17);
    expect(await readStagingMark(ns)).toBe(17);
    await writeStagingMark(ns, 3);
    expect(await readStagingMark(ns)).toBe(3);
    await removeStagingMark(ns);
    expect(await ns.exists(STAGING_MARK)).toBe(false);
    await removeStagingMark(ns);
  });

  it('every truncation and every flipped byte reads as no mark, never as another number (seeded fuzz too)', async () => {
    await loadKernels();
    const ns = new MemoryNamespace();
    await writeStagingMark(ns, 1234);
    const good = ns.files.get(STAGING_MARK)!.buf.slice(0, ns.files.get(STAGING_MARK)!.length);
    const at = (bytes: Uint8Array) => {
      const m = new MemoryNamespace();
      m.files.set(STAGING_MARK, new MemoryBacking(bytes));
      return readStagingMark(m);
    };
    for (let n = 0; n < good.length; n++) expect(await at(good.slice(0, n))).toBeNull();
    for (let i = 0; i < good.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const b = good.slice();
        b[i] ^= bit;
        expect(await at(b)).toBeNull();
      }
    }
    const rng = new Rng(77);
    for (let k = 0; k < 500; k++) expect(await at(rng.bytes(rng.int(80)))).toBeNull();
    expect(await at(good)).toBe(1234);
  });
});
