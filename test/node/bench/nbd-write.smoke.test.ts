import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { benchNbdWrite, NBD_WRITE_ROW } from '../../../src/bench/nbd-write.js';

function has(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const tools = ['nbdkit', 'nbdinfo', 'qemu-img'].every(has);

// Shape only: timings are never asserted.
describe('NBD random-write benchmark (quick)', () => {
  it.skipIf(!tools)('serve-nbd vs nbdkit file under qemu-img bench -w -d 16: one well-formed paired row', async () => {
    const out = await benchNbdWrite({ quick: true });
    expect(out.map((r) => r.name)).toEqual([NBD_WRITE_ROW]);
    const r = out[0]!;
    expect(r.unit).toBe('ops/s');
    expect(r.peerName).toMatch(/^nbdkit file/);
    expect(r.target).toBe(0.8);
    expect(typeof r.met).toBe('boolean');
    expect(r.rounds).toBe(1);
    for (const x of [r.ours, r.peer, r.ratio]) {
      expect(Number.isFinite(x)).toBe(true);
      expect(x).toBeGreaterThan(0);
    }
    expect(r.note).toMatch(/4000 writes of 4 KiB/);
  });

  it.skipIf(tools)('skipped: nbdkit, nbdinfo or qemu-img is not installed (bash .ci/setup-system.sh)', () => {});
});
