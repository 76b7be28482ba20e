/**
 * Issue 14, item 3: a crash at every store write of a copy (fault-injecting namespace under the
 * destination), then the same copy again: it completes, every snapshot and the live view equal the
 * source's, and layers finished before the crash are not copied again. Until the copy's commit the
 * destination shows nothing of it: a new one is no volume, an existing one is as it was.
 */
import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { copyVolume } from '../../../src/transfer/copy.js';
import { sweepCrashPoints } from '../volume/crash-sweep.js';
import { baseOnly, fourLayers, view, type View } from './copy-fixture.js';

const MODES: [CrashMode, TearMode][] = [
  ['keep-unflushed', 'prefix'],
  ['drop-unflushed', 'sectors'],
  ['random', 'sectors'],
  ['keep-unflushed', 'full'],
];

async function viewOrNone(ns: MemoryNamespace): Promise<View | 'none'> {
  try {
    return await view(ns);
  } catch (e) {
    if (isStrataError(e) && (e.code === 'not-found' || e.code === 'corrupt')) return 'none';
    throw e;
  }
}

describe.each([
  ['a new volume', false],
  ['a volume holding the base', true],
])('copy crashed at every store write, into %s, then run again', (_what, existing) => {
  it('completes equal to the source, shows nothing half-done meanwhile, and keeps finished layers', async () => {
    const src = new MemoryNamespace();
    await fourLayers(src);
    const want = await view(src);
    const fresh = async () => {
      const ns = new MemoryNamespace();
      if (existing) await baseOnly(ns);
      return ns;
    };
    const before = existing ? await view(await fresh()) : 'none';
    const probe = new FaultController({});
    await copyVolume(src, new FaultNamespace(await fresh(), probe));
    const total = probe.writes;
    expect(total).toBeGreaterThan(10);
    let resumedLayers = 0;
    const checked = await sweepCrashPoints(total, 0, 1, 1, (k) => MODES[k % MODES.length]!, async (k, mode, tear) => {
      const inner = await fresh();
      const ctl = new FaultController({ crashAt: k, tear, seed: 7919 + k, sectorSize: 512 });
      const err = await copyVolume(src, new FaultNamespace(inner, ctl)).then(
        () => null,
        (e: unknown) => e,
      );
      if (err === null) return 'the copy did not crash';
      await ctl.crash(mode);
      const seen = await viewOrNone(inner);
      if (JSON.stringify(seen) !== JSON.stringify(before) && JSON.stringify(seen) !== JSON.stringify(want)) return `after the crash the destination shows ${JSON.stringify(seen)}`;
      const r = await copyVolume(src, inner);
      resumedLayers += r.resumed;
      if (r.reused + r.copied + r.resumed !== 4) return `the rerun reported ${JSON.stringify(r)}`;
      expect(await view(inner)).toEqual(want);
      if ((await inner.list()).includes('staging.mark')) return 'the staging mark was left';
      return null;
    });
    expect(checked).toBe(total);
    // Crashes after a layer was finished let the rerun keep it instead of copying it again.
    expect(resumedLayers).toBeGreaterThan(0);
  });
});
