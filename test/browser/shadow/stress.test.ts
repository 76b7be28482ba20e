/**
 * Shadow copy stress in real Chromium: a writer worker overwrites random blocks of an OPFS
 * volume while four passive reader workers read random ranges of a shadow copy (diff areas in
 * OPFS) and check every block against checksums taken with it. Shared-memory bitmaps (the page
 * is cross-origin isolated) and the message fallback (forced; and with a writer that has no
 * shared memory at all). Zero mismatches over a million block reads each. That the check
 * would see a mismatch is shown without timing in recheck.test.ts: with the re-check off, a
 * forced interleaving returns the new bytes (a run like this one without it found 9 in 900,000
 * reads once and none another time, so it could not be a test).
 *
 * Ranges are up to 512 blocks of 512 B: in Chromium 156 every call on a 'readwrite-unsafe' sync
 * access handle (the only mode in which a writer and readers share a file) costs about a
 * millisecond here, whatever its size, so the test reads fewer, larger ranges.
 */
import { describe, expect, it } from 'vitest';
import type { VerifyResult } from '../../../src/bench/shadow-load.js';

/** The message fallback costs a round trip per read; it still does a million block reads. */
const messageTotal = 1_000_000;

const BS = 512;

interface Run {
  results: VerifyResult[];
  writes: number;
}

function next(w: Worker, want: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const on = (e: MessageEvent): void => {
      const m = e.data as { t: string; message?: string };
      if (m.t === want) {
        w.removeEventListener('message', on);
        resolve(m as Record<string, unknown>);
      } else if (m.t === 'error') {
        w.removeEventListener('message', on);
        reject(new Error(m.message));
      }
    };
    w.addEventListener('message', on);
  });
}

async function stress(opts: { dir: string; writerShared: boolean; mode: 'shared' | 'message'; recheck: boolean; total: number; blocks: number; maxRun: number; rotateEvery?: number; stopAfterMismatches?: number }): Promise<Run> {
  const writer = new Worker(new URL('./writer.worker.ts', import.meta.url), { type: 'module' });
  const readers: Worker[] = [];
  try {
    const ready = next(writer, 'ready');
    writer.postMessage({ t: 'setup', dir: opts.dir, blocks: opts.blocks, blockSize: BS, shared: opts.writerShared });
    const { sums } = (await ready) as { sums: BigUint64Array };
    const done: Promise<VerifyResult>[] = [];
    for (let i = 0; i < 4; i++) {
      const r = new Worker(new URL('./reader.worker.ts', import.meta.url), { type: 'module' });
      readers.push(r);
      const ch = new MessageChannel();
      const served = next(writer, 'served');
      writer.postMessage({ t: 'serve', port: ch.port1 }, [ch.port1]);
      await served;
      const started = next(r, 'ready');
      done.push(next(r, 'done').then((m) => m.result as VerifyResult));
      r.postMessage({ dir: opts.dir, port: ch.port2, mode: opts.mode, sums, blockReads: opts.total / 4, maxRun: opts.maxRun, seed: i + 1, recheck: opts.recheck, stopAfterMismatches: opts.stopAfterMismatches }, [ch.port2]);
      await started;
    }
    const hammered = next(writer, 'hammered');
    writer.postMessage({ t: 'hammer', rotateEvery: opts.rotateEvery, maxRun: 64 });
    const results = await Promise.all(done);
    writer.postMessage({ t: 'stop' });
    const h = (await hammered) as { writes: number };
    return { results, writes: h.writes };
  } finally {
    for (const r of readers) r.terminate();
    writer.terminate();
  }
}

function sum(run: Run): { blockReads: number; mismatches: number; rechecked: number; fromDiff: number } {
  return run.results.reduce((a, r) => ({ blockReads: a.blockReads + r.blockReads, mismatches: a.mismatches + r.mismatches, rechecked: a.rechecked + r.rechecked, fromDiff: a.fromDiff + r.fromDiff }), { blockReads: 0, mismatches: 0, rechecked: 0, fromDiff: 0 });
}

describe('shadow copy stress (Chromium, OPFS, Web Workers)', () => {
  it('4 reader workers on shared-memory bitmaps: 0 mismatches in 1,000,000 block reads', async () => {
    expect(crossOriginIsolated).toBe(true);
    const run = await stress({ dir: 'shadow-stress-sab', writerShared: true, mode: 'shared', recheck: true, total: 1_000_000, blocks: 16384, maxRun: 512, rotateEvery: 500 });
    const s = sum(run);
    console.log('chromium shared', JSON.stringify({ ...s, writes: run.writes }));
    expect(s.blockReads).toBeGreaterThanOrEqual(1_000_000);
    expect(s.mismatches).toBe(0);
    expect(run.writes).toBeGreaterThan(0);
  }, 600_000);

  it(`4 reader workers on the message fallback (forced; writer without shared memory): 0 mismatches in ${messageTotal.toLocaleString('en')} block reads`, async () => {
    const run = await stress({ dir: 'shadow-stress-msg', writerShared: false, mode: 'message', recheck: true, total: messageTotal, blocks: 16384, maxRun: 512, rotateEvery: 500 });
    const s = sum(run);
    console.log('chromium message', JSON.stringify({ ...s, writes: run.writes }));
    expect(s.blockReads).toBeGreaterThanOrEqual(messageTotal);
    expect(s.mismatches).toBe(0);
  }, 600_000);
});
