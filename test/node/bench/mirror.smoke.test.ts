import { describe, expect, it } from 'vitest';
import { benchMirror } from '../../../src/bench/mirror.js';

// Shape only: timings are never asserted.
describe('mirror benchmark (quick)', () => {
  it('reports the network and raw mirrors against a local-directory mirror from the same run', async () => {
    const r = await benchMirror({ quick: true });
    expect(r.map((x) => x.peerName)).toEqual(['mirror to a local directory', 'mirror to a local directory']);
    for (const x of r) expect(x.ours > 0 && x.peer > 0 && Number.isFinite(x.ratio)).toBe(true);
  });
});
