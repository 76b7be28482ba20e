import { describe, expect, it } from 'vitest';
import { localLinkPair } from '../../../src/consistency/local.js';
import { MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { remoteSide, serveResyncSide } from '../../../src/resync/remote.js';
import { resync } from '../../../src/resync/resync.js';
import { SegmentSums } from '../../../src/resync/segment-sums.js';
import { StoreSide, VolumeSide, type ResyncSide } from '../../../src/resync/side.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { countingLink, diverge, equalBytes, pickSegments, randomBytes, volumeWith } from './helpers.js';

/**
 * A random 1 % of segments diverged: resync moves exactly those segments (bytes counted, on the
 * link where there is one), verify lists exactly them, and afterwards both sides are equal.
 */
const SEG = 64 * 1024;
const COUNT = 300;
const SIZE = SEG * COUNT - 4096; // the last segment is short
const DIVERGED = pickSegments(COUNT, 3, 17); // 1 %

type Kind = 'raw' | 'volume' | 'volume+sums';

async function side(kind: Kind, content: Uint8Array, writable: boolean): Promise<{ side: ResyncSide; bytes: () => Promise<Uint8Array>; close: () => Promise<void> }> {
  if (kind === 'raw') {
    const store = new MemoryStore(content.slice());
    return { side: new StoreSide(store, 'raw', 'raw:mem', SEG, writable), bytes: () => store.read(0, store.size), close: async () => {} };
  }
  const ns = new MemoryNamespace();
  const v = await volumeWith(content, 4096, ns);
  let sums: SegmentSums | null = null;
  if (kind === 'volume+sums') {
    sums = await SegmentSums.open(v, { segmentSize: SEG });
    await sums.refresh();
    expect(sums.validCount).toBe(COUNT);
  }
  return {
    side: new VolumeSide(v, sums, SEG),
    bytes: () => v.read(0, v.size),
    close: async () => {
      await sums?.close();
      await v.close();
    },
  };
}

const PAIRS: [Kind, Kind][] = [
  ['raw', 'raw'],
  ['volume', 'volume'],
  ['volume+sums', 'volume+sums'],
  ['volume+sums', 'raw'],
  ['raw', 'volume+sums'],
];

describe('resync', () => {
  for (const [a, b] of PAIRS) {
    for (const remote of [false, true]) {
      it(`${a} -> ${b}${remote ? ' (destination over a link)' : ''}: moves only the diverged segments, verify lists them`, async () => {
        await loadKernels();
        const base = randomBytes(SIZE, 5);
        const changed = diverge(base, DIVERGED, SEG, 9);
        const s = await side(a, base, false);
        const d = await side(b, changed, true);
        let dstSide: ResyncSide = d.side;
        const wire = { sent: 0, received: 0 };
        if (remote) {
          const [l1, l2] = localLinkPair();
          serveResyncSide(l2, d.side, { writable: true });
          dstSide = await remoteSide(countingLink(l1, wire));
        }
        const v = await resync(s.side, dstSide, { verify: true });
        expect(v.complete).toBe(true);
        expect(v.differingOffsets).toEqual(DIVERGED.map((i) => i * SEG));
        expect(v.bytesSentSrcToDst).toBeLessThan(COUNT * 40);
        const before = { ...wire };
        const r = await resync(s.side, dstSide, { window: 32 });
        expect(r).toMatchObject({ complete: true, segmentsCompared: COUNT, segmentsDiffering: DIVERGED.length });
        expect(r.differingOffsets).toEqual(DIVERGED.map((i) => i * SEG));
        expect(r.copiedOffsets).toEqual(r.differingOffsets);
        const moved = DIVERGED.reduce((n, i) => n + Math.min(SEG, SIZE - i * SEG), 0);
        if (remote) {
          // what the link carried towards the destination: the segments plus small requests
          expect(wire.sent - before.sent).toBe(r.bytesSentSrcToDst);
          expect(r.bytesSentSrcToDst).toBeGreaterThanOrEqual(moved);
          expect(r.bytesSentSrcToDst).toBeLessThanOrEqual(moved * 1.1);
          expect(wire.received - before.received).toBe(r.bytesSentDstToSrc);
        } else {
          expect(r.bytesSentSrcToDst).toBe(moved);
        }
        // a side with valid checksums is not read to compare
        if (a === 'volume+sums') expect(r.bytesHashedSrc).toBe(0);
        else expect(r.bytesHashedSrc).toBe(SIZE);
        expect(equalBytes(await d.bytes(), base)).toBe(true);
        const again = await resync(s.side, dstSide, { verify: true });
        expect(again.differingOffsets).toEqual([]);
        await s.close();
        await d.close();
      });
    }
  }

  it('refuses sides of different segment sizes or sizes, and a read-only destination', async () => {
    await loadKernels();
    const a = new StoreSide(new MemoryStore(new Uint8Array(SEG * 4)), 'a', 'a', SEG);
    const b = new StoreSide(new MemoryStore(new Uint8Array(SEG * 4)), 'b', 'b', SEG * 2);
    await expect(resync(a, b)).rejects.toMatchObject({ code: 'invalid-argument' });
    const c = new StoreSide(new MemoryStore(new Uint8Array(SEG * 5)), 'c', 'c', SEG);
    await expect(resync(a, c)).rejects.toMatchObject({ code: 'invalid-argument' });
    const ro = new StoreSide(new MemoryStore(new Uint8Array(SEG * 4)), 'ro', 'ro', SEG, false);
    await expect(resync(a, ro)).rejects.toMatchObject({ code: 'read-only' });
    expect((await resync(a, ro, { verify: true })).complete).toBe(true);
  });

  it('a source served over a link, the destination local', async () => {
    await loadKernels();
    const base = randomBytes(SIZE, 1);
    const src = new MemoryStore(base.slice());
    const dst = new MemoryStore(diverge(base, DIVERGED, SEG, 2));
    const [l1, l2] = localLinkPair();
    const served = serveResyncSide(l2, new StoreSide(src, 'src', 'src', SEG, false));
    const remote = await remoteSide(l1);
    const r = await resync(remote, new StoreSide(dst, 'dst', 'dst', SEG));
    expect(r.differingOffsets).toEqual(DIVERGED.map((i) => i * SEG));
    const moved = DIVERGED.reduce((n, i) => n + Math.min(SEG, SIZE - i * SEG), 0);
    expect(r.bytesSentSrcToDst).toBeGreaterThanOrEqual(moved);
    expect(r.bytesSentSrcToDst).toBeLessThanOrEqual(served.wire.sent);
    expect(r.bytesSentSrcToDst).toBeLessThanOrEqual(moved * 1.1);
    expect(r.bytesHashedSrc).toBe(SIZE);
    expect(equalBytes(await dst.read(0, dst.size), base)).toBe(true);
    // a read-only served side refuses writes
    await expect(remote.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: 'read-only' });
  });
});
