/**
 * Stress: one writer overwrites random blocks as fast as it can while passive readers in
 * worker_threads (shared-memory bitmaps, or the message fallback) and in a separate process
 * read random ranges of a shadow copy and check every block against checksums taken with it.
 * Zero mismatches over more than a million block reads. That the check can fail is shown
 * without timing: the race the re-check closes is forced with a gate, for each kind of reader,
 * and without the re-check the reader returns the new bytes. STRATADISK_LONG=1 reads ten times as much.
 */
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { recheckScenario } from './recheck-scenario.js';
import { runStress, type StressOutcome } from './stress-harness.js';

const long = process.env.STRATADISK_LONG === '1';
const total = long ? 10_000_000 : 1_000_000;

function summary(o: StressOutcome): { blockReads: number; mismatches: number; rechecked: number; fromDiff: number } {
  return o.results.reduce((a, r) => ({ blockReads: a.blockReads + r.blockReads, mismatches: a.mismatches + r.mismatches, rechecked: a.rechecked + r.rechecked, fromDiff: a.fromDiff + r.fromDiff }), { blockReads: 0, mismatches: 0, rechecked: 0, fromDiff: 0 });
}

describe('shadow copy stress (Node)', () => {
  it(`4 worker_threads readers on shared-memory bitmaps: 0 mismatches in ${total.toLocaleString('en')} block reads`, async () => {
    const o = await runStress({ blockSize: 512, blocks: 16384, readers: Array.from({ length: 4 }, () => ({ kind: 'shared' as const })), perReader: total / 4, maxRun: 32, recheck: true, rotateEvery: 2000, flushEvery: 32, seed: 11 });
    const s = summary(o);
    console.log('shared', JSON.stringify({ ...s, writes: o.writes, rotations: o.rotations }));
    expect(s.blockReads).toBeGreaterThanOrEqual(total);
    expect(s.mismatches).toBe(0);
    expect(o.writes).toBeGreaterThan(0);
    expect(s.fromDiff).toBeGreaterThan(0);
  });

  it(`4 readers on the message fallback (3 worker_threads + 1 separate process): 0 mismatches in ${total.toLocaleString('en')} block reads`, async () => {
    const o = await runStress({ blockSize: 512, blocks: 16384, readers: [{ kind: 'message' }, { kind: 'message' }, { kind: 'message' }, { kind: 'process' }], perReader: total / 4, maxRun: 32, recheck: true, rotateEvery: 2000, flushEvery: 32, seed: 12 });
    const s = summary(o);
    console.log('message', JSON.stringify({ ...s, writes: o.writes, rotations: o.rotations, perReader: o.results.map((r) => r.mismatches) }));
    expect(s.blockReads).toBeGreaterThanOrEqual(total);
    expect(s.mismatches).toBe(0);
  });

});

/** The race the re-check closes, forced with a gate (recheck-scenario.ts), for each kind of reader. */
describe('the re-check catches a volume read overtaken by a commit', () => {
  for (const mode of ['shared', 'message', 'in-process'] as const) {
    for (const recheck of [true, false]) {
      it(`${mode} reader, ${recheck ? 'with' : 'without'} the re-check: ${recheck ? 'the old bytes' : 'a mismatch (new bytes)'}`, () =>
        recheckScenario(mode, recheck, () => new MessageChannel()));
    }
  }
});
