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
import type { ShadowCopyReader } from '../../../src/shadow/read-path.js';
import { ShadowReader, ShadowVolume } from '../../../src/shadow/index.js';
import { MemoryBacking, MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { Rng, equalBytes } from '../helpers/random.js';
import { Gate, GatedStore } from './gated-store.js';
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

/**
 * The race the re-check closes, forced rather than hoped for: a reader finds block 5 not
 * preserved and starts reading it from the volume; before that read reaches the volume the
 * writer overwrites block 5 and commits (publishes the block, then writes the volume); then the
 * read goes on and gets the new bytes. With the re-check the reader looks at the bits again and
 * reads the preserved old bytes instead; without it, it returns the new bytes: a mismatch. The
 * order of events is fixed by a gate on the reader's volume store (memory stores, no timing).
 */
describe('the re-check catches a volume read overtaken by a commit', () => {
  const BS = 512, N = 32;
  for (const mode of ['shared', 'message', 'in-process'] as const) {
    for (const recheck of [true, false]) {
      it(`${mode} reader, ${recheck ? 'with' : 'without'} the re-check: ${recheck ? 'the old bytes' : 'a mismatch (new bytes)'}`, async () => {
        await loadKernels();
        const old = new Rng(61).bytes(BS * N);
        const backing = new MemoryBacking(old.slice());
        const ns = new MemoryNamespace();
        const writerVolume = new GatedStore(new MemoryStore(backing), 'writer volume');
        const sv = await ShadowVolume.open(writerVolume, ns, { blockSize: BS, sharedMemory: mode === 'shared' });
        await sv.createShadow({ name: 'a' });
        let readerVolume: GatedStore;
        let reader: ShadowCopyReader;
        const ch = new MessageChannel();
        const stopServe = sv.serve(ch.port1);
        if (mode === 'in-process') {
          readerVolume = writerVolume;
          reader = sv.openShadow('a', { recheck });
        } else {
          readerVolume = new GatedStore(new MemoryStore(backing, { readOnly: true }), 'reader volume');
          reader = await ShadowReader.connect(ch.port2, { copy: 'a', volume: readerVolume, areas: new MemoryNamespace({ files: ns.files, readOnly: true }), mode, recheck });
        }
        try {
          const gate = new Gate();
          readerVolume.beforeRead = () => {
            readerVolume.beforeRead = null;
            return gate.wait();
          };
          const read = reader.read(5 * BS, BS);
          await gate.reached; // block 5 was not preserved when the reader looked
          const fresh = new Uint8Array(BS).fill(0xee);
          await sv.write(5 * BS, fresh);
          await sv.flush(); // published, then written to the volume
          expect(backing.buf.subarray(5 * BS, 6 * BS)).toEqual(fresh);
          gate.open();
          const got = await read;
          if (recheck) {
            expect(got).toEqual(old.subarray(5 * BS, 6 * BS));
            expect(reader.stats.rechecked).toBe(1);
          } else {
            expect(got).toEqual(fresh);
          }
          // with the re-check, any later read is right too
          if (recheck) expect(equalBytes(await reader.read(0, BS * N), old)).toBe(true);
        } finally {
          await reader.close();
          stopServe();
          ch.port1.close();
          ch.port2.close();
          await sv.close();
        }
      });
    }
  }
});
