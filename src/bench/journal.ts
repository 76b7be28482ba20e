/**
 * Write log (group `journal`, issue 16):
 * - random 4 KiB writes at QD16 and sequential 1 MiB writes, with a flush at the end, into a
 *   journaled volume vs the same volume shape without a log (target ≥ 0.5×: the log writes the
 *   same bytes once more; Ceph RBD journaling documents about 2× latency);
 * - opening a view at a random point and reading 1,000 random blocks, with logs of 10^3, 10^4
 *   and 10^5 records (10^6 in the full run's largest step when not quick): how it grows (target:
 *   logarithmic, within 2× from 10^4 to 10^6). Peer: the same reads from the live volume.
 * Both sides on Node files in one temporary directory, same run, paired rounds.
 */
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enableJournal } from '../journal/open.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { prng } from './prng.js';
import { pairedResult, result, runPairedRounds, type BenchResult } from './result.js';

const MiB = 1 << 20;
const IO = 4096;

export const JOURNAL_ROWS = {
  random: 'journal: random 4 KiB writes, QD16, journaled vs plain',
  sequential: 'journal: sequential 1 MiB writes, journaled vs plain',
  views: 'journal: open a view at a random point + 1,000 random 4 KiB reads',
} as const;

export async function benchJournal(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const size = quick ? 32 * MiB : 256 * MiB;
  const count = quick ? 2000 : 20000;
  const rounds = quick ? 1 : 3;
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-journal-'));
  const out: BenchResult[] = [];
  let n = 0;
  const fresh = async (journaled: boolean): Promise<Volume> => {
    const ns = new NodeDirNamespace(join(dir, `v${n++}`), { create: true });
    const v = await Volume.create(ns, { size });
    if (journaled) await enableJournal(v, ns, '');
    return v;
  };
  try {
    const pattern = new Uint8Array(IO);
    randomFillSync(pattern);
    const randomWrites = async (journaled: boolean): Promise<number> => {
      const v = await fresh(journaled);
      const rnd = prng(7);
      let left = count;
      const t0 = performance.now();
      const worker = async (): Promise<void> => {
        while (left-- > 0) await v.write(Math.floor(rnd() * (size / IO)) * IO, pattern);
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      await v.flush();
      const ops = (count * 1000) / (performance.now() - t0);
      await v.close();
      return ops;
    };
    const [jr, pr] = await runPairedRounds([() => randomWrites(true), () => randomWrites(false)], rounds);
    out.push(pairedResult(JOURNAL_ROWS.random, jr!, pr!, 'ops/s', 'the same writes on a volume without a log', 0.5, `${count} writes of 4 KiB at random 4 KiB offsets of a ${size / MiB} MiB volume (64 KiB blocks), 16 in flight, one flush at the end; the log stores only the 4 KiB written (a block whole once it has 8 partial pieces in a row)`));
    const big = new Uint8Array(MiB);
    randomFillSync(big);
    const seqWrites = async (journaled: boolean): Promise<number> => {
      const v = await fresh(journaled);
      const t0 = performance.now();
      for (let at = 0; at < size; at += MiB) await v.write(at, big);
      await v.flush();
      const mibps = (size / MiB) / ((performance.now() - t0) / 1000);
      await v.close();
      return mibps;
    };
    const [js, ps] = await runPairedRounds([() => seqWrites(true), () => seqWrites(false)], rounds);
    out.push(pairedResult(JOURNAL_ROWS.sequential, js!, ps!, 'MiB/s', 'the same writes on a volume without a log', 0.5, `${size / MiB} MiB written in 1 MiB writes, one flush at the end`));
    // views: a log of N records (4 KiB writes at random blocks, a flush every 64), then open a
    // view at a random flushed point and read 1,000 random 4 KiB ranges
    const steps = quick ? [1000, 10000] : [10000, 100000, 1000000];
    const viewSize = 64 * MiB;
    for (const records of steps) {
      const ns = new NodeDirNamespace(join(dir, `views${records}`), { create: true });
      const v = await Volume.create(ns, { size: viewSize, blockSize: IO });
      const j = await enableJournal(v, ns, '');
      const rnd = prng(records);
      const flushes: number[] = [];
      for (let i = 0; i < records; i++) {
        await v.write(Math.floor(rnd() * (viewSize / IO)) * IO, pattern);
        if (i % 64 === 63) {
          await v.flush();
          flushes.push(j.status().lastFlush);
        }
      }
      await v.flush();
      const buf = new Uint8Array(IO);
      const reads = async (reader: { readInto(o: number, t: Uint8Array): Promise<void> }): Promise<number> => {
        const r = prng(99);
        const t0 = performance.now();
        for (let i = 0; i < 1000; i++) await reader.readInto(Math.floor(r() * (viewSize / IO)) * IO, buf);
        return performance.now() - t0;
      };
      const point = flushes[Math.floor(rnd() * flushes.length)]!;
      const t0 = performance.now();
      const view = j.view(`seq:${point}`);
      const openMs = performance.now() - t0;
      const ms = openMs + (await reads(view));
      const liveMs = await reads(v);
      out.push(result(`${JOURNAL_ROWS.views}, ${records} records`, ms, liveMs, 'ms', '1,000 random 4 KiB reads of the live volume', undefined, `view at seq:${point} of ${j.status().lastSeq}; opening it took ${openMs.toFixed(3)} ms; 4 KiB blocks; ratio = time (lower is better); the log's index was built when the volume opened`));
      await v.close();
      await rm(join(dir, `views${records}`), { recursive: true, force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
