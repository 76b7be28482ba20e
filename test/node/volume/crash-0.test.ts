import { describe, it } from 'vitest';
import { LONG, crashSweep } from './crash-sweep.js';

// The sweep is split over files so vitest runs the halves on both cores.
describe('crash safety (shard 0 of 2)', () => {
  const seeds = LONG ? [11, 12, 13, 14, 15] : [11];
  for (const seed of seeds) {
    it(`seed ${seed}: crash at every write of a 1,200-step workload; flushed writes survive, nothing unwritten appears`, async () => {
      await crashSweep(seed, 1200, 0, 2);
    }, 1_800_000);
  }
});
