import { describe, expect, it } from 'vitest';
import { LONG } from './crash-sweep.js';
import { concurrentCrashSweep } from './crash-sweep-concurrent.js';

// `npm test` crashes at every 5th store write (a seeded starting point); STRATADISK_LONG=1
// crashes at every store write, over more seeds.
describe('crash safety with concurrent writers', () => {
  const seeds = LONG ? [21, 22, 23, 24, 25] : [21];
  for (const seed of seeds) {
    it(`seed ${seed}: crash at ${LONG ? 'every' : 'every 5th'} store write of 40 rounds of concurrent writes and flushes; acknowledged flushes survive, nothing unwritten or half-written appears`, async () => {
      const checked = await concurrentCrashSweep(seed, 40, seed, LONG ? 1 : 5);
      expect(checked).toBeGreaterThan(LONG ? 400 : 80);
    }, 1_800_000);
  }
});
