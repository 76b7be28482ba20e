import { describe, expect, it } from 'vitest';
import { benchPublish } from '../../../src/bench/publish.js';

// Shape only: timings are never asserted. The byte counts are (they do not depend on load).
describe('publish benchmark (quick)', () => {
  it('reports throughput, bytes stored and the republish ratio against casync from the same run', async () => {
    const r = await benchPublish({ quick: true });
    expect(r.map((x) => x.peerName)).toEqual(['casync make', 'casync make', 'casync make (new chunk files)']);
    for (const x of r) expect(x.ours > 0 && Number.isFinite(x.ours)).toBe(true);
    expect(r[2]!.met).toBe(true);
  }, 120_000);
});
