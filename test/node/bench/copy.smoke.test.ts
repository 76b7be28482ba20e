import { describe, expect, it } from 'vitest';
import { benchCopy } from '../../../src/bench/copy.js';

// Shape only: timings are never asserted; bytes moved are exact.
describe('copy benchmark (quick)', () => {
  it('moves only the deltas to a store holding the base, and reports cp from the same run', async () => {
    const [moved, , time, objectsPut, objectsTime] = await benchCopy({ quick: true });
    expect(moved!.ours).toBeCloseTo((3 << 20) / 1e6, 2);
    expect(moved!.peer).toBeGreaterThan((11 << 20) / 1e6);
    expect(moved!.note).toContain('bytes moved / delta bytes = 1.000');
    expect(time!.peerName).toBe('cp + sync of the delta layer files');
    expect(time!.ours > 0 && time!.peer > 0 && Number.isFinite(time!.ratio)).toBe(true);
    // into an object store holding the base: the parts put are the delta layers' bytes
    expect(objectsPut!.name).toBe('copy into an object store holding the base: bytes put');
    expect(objectsPut!.note).toMatch(/bytes put \/ delta bytes = 1\.0\d\d/);
    expect(objectsTime!.peerName).toBe('the same copy into a directory holding the base');
  });
});
