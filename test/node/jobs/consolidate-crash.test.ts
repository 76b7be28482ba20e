import { describe, expect, it } from 'vitest';
import { LONG, consolidationCrashSweep, type Scenario } from './consolidate-crash.js';

// Every write of the job and its concurrent writer is a crash point in the long run; the default
// run checks a seeded slice (every 3rd write) of each scenario.
const scenarios: Scenario[] = [
  { seed: 21, name: 's2', direction: 'down' },
  { seed: 22, name: 's2', direction: 'up' },
  { seed: 23, name: 's1', direction: 'down' },
  { seed: 24, name: 's1', direction: 'up' },
  ...(LONG
    ? ([
        { seed: 31, name: 's2', direction: 'down' },
        { seed: 32, name: 's2', direction: 'up' },
        { seed: 33, name: 's1', direction: 'down' },
        { seed: 34, name: 's1', direction: 'up' },
      ] as Scenario[])
    : []),
];

describe('online consolidation: crash at every write', () => {
  for (const s of scenarios) {
    it(`delete ${s.name} (${s.direction}), seed ${s.seed}: old or new chain, same contents, and the job can finish`, async () => {
      const checked = await consolidationCrashSweep(s, 0, 1, LONG ? 1 : 3);
      expect(checked).toBeGreaterThan(10);
    }, 600_000);
  }
});
