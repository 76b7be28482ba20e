/**
 * Online consolidation with a concurrent writer (part of group `commit`): deleting the base
 * snapshot under an active delta (the job commits the delta down while a write mirror copies new
 * writes), with a writer doing random 64 KiB writes and a flush every 32 until the job ends.
 *
 * The headline row is the writer's throughput while an unthrottled job runs vs the same writer
 * with no job (issue 15: ≥ 0.5×), the job yielding to foreground I/O as it does by default
 * (src/jobs/foreground.ts); the job's own rate is reported beside it. The same with the job told
 * to ignore foreground I/O (`foreground: 'ignore'`, what every job did before), and with an
 * explicit rate limit, are informative rows. Everything is measured in the same run, in paired
 * rounds (3; quick: 1) that alternate the order of the five runs; ratios are medians per round.
 */
import { randomFillSync } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { consolidate } from '../jobs/consolidate.js';
import type { JobOptions } from '../jobs/job.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { BLOCK, makeChain } from './commit-chain.js';
import { prng } from './prng.js';
import { median, pairedResult, runPairedRounds, type BenchResult } from './result.js';

interface Run {
  /** the job's MB/s over its whole run */
  jobRate: number;
  /** the writer's MB/s while the job ran */
  writerRate: number;
  direction: string;
}

export async function benchOnlineConsolidation(opts: { quick?: boolean; root: string }): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const root = opts.root;
  const size = quick ? 32 << 20 : 256 << 20;
  const span = quick ? 0.5 : 4;
  const fresh = async <T>(name: string, fn: (vol: Volume) => Promise<T>): Promise<T> => {
    const dir = join(root, name);
    await makeChain(dir, size, 1, 0.5);
    const vol = await Volume.open(new NodeDirNamespace(dir));
    try {
      return await fn(vol);
    } finally {
      await vol.close();
      await rm(dir, { recursive: true, force: true });
    }
  };
  const rounds = quick ? 1 : 3;
  const limit = (quick ? 16 : 32) * 1e6;
  const withWriter = (name: string, options: JobOptions) => (): Promise<Run> =>
    fresh(name, async (vol) => {
      const t0 = performance.now();
      const job = consolidate(vol, { op: 'delete-snapshot', name: 'base' }, options);
      let finished = false;
      const end = job.done.finally(() => (finished = true));
      const writerRate = await writer(vol, () => finished, Infinity);
      await end;
      const jobRate = job.info().progress.done / 1e6 / ((performance.now() - t0) / 1000);
      return { jobRate, writerRate, direction: job.plan.direction };
    });
  const [alone, jobAlone, yielding, ignoring, limited] = (await runPairedRounds<Run>(
    [
      async () => ({ jobRate: 0, writerRate: await fresh('w0', (vol) => writer(vol, () => false, span * 1000)), direction: '' }),
      () =>
        fresh('j0', async (vol) => {
          const t0 = performance.now();
          const job = consolidate(vol, { op: 'delete-snapshot', name: 'base' });
          await job.done;
          return { jobRate: job.info().progress.done / 1e6 / ((performance.now() - t0) / 1000), writerRate: 0, direction: job.plan.direction };
        }),
      withWriter('j1', {}),
      withWriter('j2', { foreground: 'ignore' }),
      withWriter('j3', { rateLimit: limit }),
    ],
    rounds,
  )) as [Run[], Run[], Run[], Run[], Run[]];
  const writers = (runs: Run[]) => runs.map((r) => r.writerRate);
  const jobs = (runs: Run[]) => runs.map((r) => r.jobRate);
  const note = `${size >> 20} MiB volume: full base (snapshot "base", deleted) under a half-allocated active delta; the job commits the delta ${jobAlone[0]!.direction} while a write mirror copies new writes; writer: random 64 KiB writes, flush every 32, until the job ends; ${rounds} paired rounds`;
  const mbs = (runs: Run[]) => `${median(jobs(runs)).toFixed(1)} MB/s`;
  const writerAlone = writers(alone);
  return [
    pairedResult('online consolidation, unthrottled (yields to foreground I/O, the default): writer during the job', writers(yielding), writerAlone, 'MB/s', 'the same writer with no job running', 0.5, `${note}; the job ran at ${mbs(yielding)} (alone: ${mbs(jobAlone)})`),
    pairedResult('online consolidation, unthrottled (yielding): the job with the writer (informative)', jobs(yielding), jobs(jobAlone), 'MB/s', 'the same job with no writer', undefined, note),
    pairedResult("online consolidation, foreground: 'ignore': writer during the job (informative)", writers(ignoring), writerAlone, 'MB/s', 'the same writer with no job running', undefined, `${note}; the job ran at ${mbs(ignoring)}`),
    pairedResult("online consolidation, foreground: 'ignore': the job with the writer (informative)", jobs(ignoring), jobs(jobAlone), 'MB/s', 'the same job with no writer', undefined, note),
    pairedResult(`online consolidation rate-limited to ${limit / 1e6} MB/s: writer during the job (informative)`, writers(limited), writerAlone, 'MB/s', 'the same writer with no job running', undefined, `${note}; the job ran at ${mbs(limited)}`),
  ];
}

/** Random 64 KiB writes with a flush every 32, until `stop()` or `ms`; returns MB/s. */
async function writer(vol: Volume, stop: () => boolean, ms: number): Promise<number> {
  const rnd = prng(99);
  const buf = new Uint8Array(BLOCK);
  randomFillSync(buf);
  const blocks = vol.size / BLOCK;
  const t0 = performance.now();
  let n = 0;
  while (!stop() && performance.now() - t0 < ms) {
    buf[0] = n & 0xff;
    await vol.write(Math.floor(rnd() * blocks) * BLOCK, buf);
    if (++n % 32 === 0) await vol.flush();
  }
  await vol.flush();
  return (n * BLOCK) / 1e6 / ((performance.now() - t0) / 1000);
}
