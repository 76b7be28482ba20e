import { describe, expect, it } from 'vitest';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { progressIn } from '../../../src/resync/progress.js';
import { resync } from '../../../src/resync/resync.js';
import { SegmentSums } from '../../../src/resync/segment-sums.js';
import { StoreSide, VolumeSide } from '../../../src/resync/side.js';
import { Volume } from '../../../src/volume/volume.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { diverge, equalBytes, pickSegments, randomBytes } from './helpers.js';
import { copyNamespace } from '../volume/workload.js';

/**
 * Resume: a resync cancelled or crashed part way continues after the last finished window on the
 * rerun (it does not compare the finished part again), copies only what is left, and ends equal.
 */
const SEG = 16 * 1024;
const COUNT = 64;
const SIZE = SEG * COUNT;
const WINDOW = 8;
const DIVERGED = pickSegments(COUNT, 12, 3);

describe('resync resumes', () => {
  it('after a cancel: the rerun starts where the first stopped, and the two together copy each diverged segment once', async () => {
    await loadKernels();
    const base = randomBytes(SIZE, 1);
    const src = new StoreSide(new MemoryStore(base.slice()), 'src', 'src', SEG, false);
    const dstStore = new MemoryStore(diverge(base, DIVERGED, SEG, 2));
    const dst = new StoreSide(dstStore, 'dst', 'dst', SEG);
    const progress = progressIn(new MemoryNamespace());
    const ac = new AbortController();
    const first = await resync(src, dst, {
      window: WINDOW,
      progress,
      signal: ac.signal,
      onProgress: (done) => {
        if (done >= 3 * WINDOW) ac.abort();
      },
    });
    expect(first.complete).toBe(false);
    expect(first.error?.code).toBe('aborted');
    expect(first.next).toBe(3 * WINDOW);
    // the result says exactly what was copied: the diverged segments below `next`
    expect(first.copiedOffsets).toEqual(DIVERGED.filter((i) => i < first.next).map((i) => i * SEG));
    const second = await resync(src, dst, { window: WINDOW, progress });
    expect(second.complete).toBe(true);
    expect(second.resumedFrom).toBe(3 * WINDOW);
    expect(second.segmentsCompared).toBe(COUNT - 3 * WINDOW);
    expect(second.copiedBefore).toBe(first.copiedOffsets.length);
    expect(second.copiedOffsets).toEqual(DIVERGED.filter((i) => i >= first.next).map((i) => i * SEG));
    expect(equalBytes(await dstStore.read(0, SIZE), base)).toBe(true);
    // finished: the progress record is gone, a third run compares everything and finds nothing
    expect(await progress.load()).toBeNull();
    const third = await resync(src, dst, { window: WINDOW, progress, verify: true });
    expect(third).toMatchObject({ resumedFrom: 0, segmentsCompared: COUNT, segmentsDiffering: 0 });
  });

  it('starts over when the source volume changed since the interrupted run', async () => {
    await loadKernels();
    const base = randomBytes(SIZE, 8);
    const srcNs = new MemoryNamespace();
    const w = await Volume.create(srcNs, { size: SIZE, blockSize: 4096 });
    await w.write(0, base);
    await w.close();
    const dstStore = new MemoryStore(diverge(base, DIVERGED, SEG, 9));
    const dst = new StoreSide(dstStore, 'dst', 'dst', SEG);
    const progress = progressIn(new MemoryNamespace());
    let src = await Volume.open(srcNs, { readOnly: true });
    const ac = new AbortController();
    const first = await resync(new VolumeSide(src, null, SEG), dst, { window: WINDOW, progress, signal: ac.signal, onProgress: (d) => d >= 2 * WINDOW && ac.abort() });
    expect(first.next).toBe(2 * WINDOW);
    await src.close();
    // the source changes below where the first run got to
    const w2 = await Volume.open(srcNs);
    await w2.write(5, new Uint8Array([1, 2, 3]));
    base.set([1, 2, 3], 5);
    await w2.close();
    src = await Volume.open(srcNs, { readOnly: true });
    const second = await resync(new VolumeSide(src, null, SEG), dst, { window: WINDOW, progress });
    expect(second).toMatchObject({ complete: true, resumedFrom: 0, copiedBefore: 0 });
    expect(equalBytes(await dstStore.read(0, SIZE), base)).toBe(true);
    await src.close();
  });

  const MODES: [CrashMode, TearMode][] = [
    ['drop-unflushed', 'prefix'],
    ['keep-unflushed', 'sectors'],
    ['random', 'sectors'],
  ];

  it('after a crash at any write of the destination (volume with checksums, progress in its directory)', async () => {
    await loadKernels();
    const base = randomBytes(SIZE, 4);
    const changed = diverge(base, DIVERGED, SEG, 5);
    const src = new StoreSide(new MemoryStore(base.slice()), 'src', 'src', SEG, false);
    // the destination volume's files before the resync
    const template = new MemoryNamespace();
    {
      const v = await Volume.create(template, { size: SIZE, blockSize: 4096 });
      await v.write(0, changed);
      await v.close();
    }
    const attempt = async (ns: FaultNamespace | MemoryNamespace) => {
      const v = await Volume.open(ns);
      const sums = await SegmentSums.open(v, { segmentSize: SEG });
      try {
        return await resync(src, new VolumeSide(v, sums), { window: WINDOW, progress: progressIn(ns) });
      } finally {
        await sums.close().catch(() => {});
        await v.close().catch(() => {});
      }
    };
    let total = 0;
    {
      const ctl = new FaultController({});
      const r = await attempt(new FaultNamespace(copyOf(template), ctl));
      expect(r.complete).toBe(true);
      total = ctl.writes;
    }
    let resumed = 0;
    for (let k = 0; k < total; k += 3) {
      const inner = copyOf(template);
      const [mode, tear] = MODES[(k / 3) % MODES.length]!;
      const ctl = new FaultController({ crashAt: k, tear, seed: k + 1, sectorSize: 512 });
      const r = await attempt(new FaultNamespace(inner, ctl)).catch(() => null);
      if (!ctl.crashed) continue;
      await ctl.crash(mode);
      const again = await attempt(inner);
      expect(again.complete, `crash at ${k}`).toBe(true);
      // it resumed at or before where the crashed run had durably got to, never after
      if (r) expect(again.resumedFrom).toBeLessThanOrEqual(r.next);
      if (again.resumedFrom > 0) resumed++;
      // it copied nothing the crashed run had finished (beyond the window in progress)
      expect(again.copiedOffsets.every((o) => o / SEG >= again.resumedFrom)).toBe(true);
      const v = await Volume.open(inner, { readOnly: true });
      expect(equalBytes(await v.read(0, SIZE), base), `crash at ${k}: not equal after the rerun`).toBe(true);
      await v.close();
    }
    expect(resumed).toBeGreaterThan(0);
  }, 120_000);
});

function copyOf(ns: MemoryNamespace): MemoryNamespace {
  return copyNamespace(ns);
}
