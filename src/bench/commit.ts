/**
 * Commit and online consolidation benchmarks (group `commit`).
 *
 * 1. Offline commit: a volume of 1 GiB (quick: 64 MiB) at 64 KiB blocks whose base layer holds
 *    random data in half its blocks and whose active layer (the delta) holds random data in an
 *    independent half; the consolidation job of `stratadisk commit --drop-snapshot` (opening the
 *    volume included) vs `qemu-img commit -t writeback -d` on the same chain exported as two
 *    qcow2 files by our exporter (same shape, same data). Same durability: qemu-img (writeback)
 *    fdatasyncs the base image at the end (strace: two fdatasync of the base, no directory
 *    fsync); we time to the durable switch (target data, map log and manifest synced). `-d`
 *    keeps qemu-img's top image; our job deletes the merged-away layer after the switch, so a
 *    second, informative row times both sides including that deletion (rm of the top image).
 *    A third row gives delta GiB per CPU-second (user+sys, all threads; GNU time for qemu-img),
 *    which barely depends on the machine's load. MB/s of delta data; paired rounds (3; quick: 1).
 * 2. Online consolidation with a concurrent writer: deleting the base snapshot under an active
 *    delta (the job commits the delta down while a write mirror copies new writes), with a
 *    writer doing random 64 KiB writes and a flush every 32. Job throughput with the writer vs
 *    the same job alone, and the writer's throughput during the job vs with no job running (and,
 *    informative, with the job rate-limited: the knob for a writer that must not slow down).
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportQcow2 } from '../interop/qcow2/export.js';
import { consolidate } from '../jobs/consolidate.js';
import { childCpuSeconds, ownCpuSeconds } from './cpu.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { prng } from './prng.js';
import { pairedResult, result, type BenchResult } from './result.js';

const run = promisify(execFile);
const BLOCK = 64 * 1024;
const BATCH = 128; // blocks per setup write

/** Write random data into a `fraction` of the blocks of `vol`, chosen by `seed`; returns bytes written. */
async function fill(vol: Volume, fraction: number, seed: number): Promise<number> {
  const rnd = prng(seed);
  const blocks = vol.size / BLOCK;
  const buf = new Uint8Array(BATCH * BLOCK);
  let bytes = 0;
  for (let b0 = 0; b0 < blocks; b0 += BATCH) {
    const n = Math.min(BATCH, blocks - b0);
    randomFillSync(buf);
    const ios: Promise<void>[] = [];
    for (let i = 0; i < n; ) {
      if (rnd() >= fraction) {
        i++;
        continue;
      }
      let e = i + 1;
      while (e < n && rnd() < fraction) e++;
      ios.push(vol.write((b0 + i) * BLOCK, buf.subarray(i * BLOCK, e * BLOCK)));
      bytes += (e - i) * BLOCK;
      i = e + 1;
    }
    await Promise.all(ios);
  }
  await vol.flush();
  return bytes;
}

/** A volume in `dir`: base (snapshot "base") with `baseFraction` of blocks, active delta with `deltaFraction`. */
async function makeChain(dir: string, size: number, baseFraction: number, deltaFraction: number): Promise<number> {
  const vol = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size, blockSize: BLOCK });
  try {
    await fill(vol, baseFraction, 1);
    await vol.snapshot('base');
    return await fill(vol, deltaFraction, 2);
  } finally {
    await vol.close();
  }
}

export async function benchCommit(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const out: BenchResult[] = [];
  const root = await mkdtemp(join(tmpdir(), 'stratadisk-bench-commit-'));
  try {
    // ---- offline commit vs qemu-img commit ----
    const size = quick ? 64 << 20 : 1 << 30;
    const rounds = quick ? 1 : 3;
    const oursSwitch: number[] = [];
    const peerCommit: number[] = [];
    const oursAll: number[] = [];
    const peerAll: number[] = [];
    const oursCpu: number[] = [];
    const peerCpu: number[] = [];
    let delta = 0;
    for (let r = 0; r < rounds; r++) {
      const dir = join(root, `vol${r}`);
      delta = await makeChain(dir, size, 0.5, 0.5);
      const top = join(root, `top${r}.qcow2`);
      const ro = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
      try {
        await exportQcow2(ro, top, { chain: true });
      } finally {
        await ro.close();
      }
      const mb = delta / 1e6;
      // ours: open, commit (durable at the switch), then close; the merged-away layer's files
      // are deleted between the switch and the end of the job
      const cpu0 = ownCpuSeconds();
      const t0 = performance.now();
      const vol = await Volume.open(new NodeDirNamespace(dir));
      const job = consolidate(vol, { op: 'commit', dropSnapshot: true });
      const switched = await job.switched;
      const tSwitch = performance.now();
      await job.done;
      await vol.close();
      const tAll = performance.now();
      const cpu1 = ownCpuSeconds();
      if (!switched) throw new Error('the benchmark commit did not switch');
      oursSwitch.push(mb / ((tSwitch - t0) / 1000));
      oursAll.push(mb / ((tAll - t0) / 1000));
      oursCpu.push(delta / 2 ** 30 / (cpu1 - cpu0));
      // peer: qemu-img commit -d keeps the top image; deleting it is timed separately
      const p0 = performance.now();
      const c0 = childCpuSeconds();
      await run('qemu-img', ['commit', '-q', '-t', 'writeback', '-d', top]);
      const cpu = childCpuSeconds() - c0;
      const p1 = performance.now();
      const rm0 = ownCpuSeconds();
      await rm(top);
      const rm1 = ownCpuSeconds();
      const p2 = performance.now();
      peerCommit.push(mb / ((p1 - p0) / 1000));
      peerAll.push(mb / ((p2 - p0) / 1000));
      // both sides' CPU includes deleting the top (the kernel frees its cached pages: not free)
      if (Number.isFinite(cpu)) peerCpu.push(delta / 2 ** 30 / (cpu + rm1 - rm0));
      await rm(dir, { recursive: true, force: true });
      await rm(join(root, `top${r}.L000001.qcow2`), { force: true });
    }
    const noteOffline =
      `${size >> 20} MiB virtual at 64 KiB blocks/clusters; base and delta each hold random data in half the blocks (delta ${(delta / 2 ** 20).toFixed(0)} MiB); ` +
      `qcow2 chain exported from the same volume; ${rounds} paired rounds; same durability: qemu-img -t writeback fdatasyncs the base image at the end, ` +
      'ours fdatasyncs the target data, its map log and the manifest (plus one manifest sync before the first in-place write)';
    out.push(pairedResult('offline commit of a half-allocated delta into its base (open to durable switch)', oursSwitch, peerCommit, 'MB/s', 'qemu-img commit -t writeback -d', 1.0, noteOffline));
    out.push(
      pairedResult('offline commit incl. deleting the merged-away top (informative)', oursAll, peerAll, 'MB/s', 'qemu-img commit -t writeback -d, then rm of the top image', undefined, `${noteOffline}; ours: until the job ends and the volume is closed (unlink + directory fsync)`),
    );
    if (peerCpu.length === rounds) {
      out.push(pairedResult('offline commit: delta GiB per CPU-second (user+sys, all threads)', oursCpu, peerCpu, 'GiB/CPU-s', 'qemu-img commit -t writeback -d (its user+sys from /proc), then rm of the top image', undefined, `${noteOffline}; load-independent unlike the MB/s rows; ours: open, job (incl. deleting the merged-away layer) and close in this process`));
    }

    // ---- online consolidation with a concurrent writer ----
    const osize = quick ? 32 << 20 : 256 << 20;
    const span = quick ? 0.5 : 2;
    const writerAlone = await (async () => {
      const dir = join(root, 'w0');
      await makeChain(dir, osize, 1, 0.5);
      const vol = await Volume.open(new NodeDirNamespace(dir));
      try {
        return await writer(vol, () => false, span * 1000);
      } finally {
        await vol.close();
        await rm(dir, { recursive: true, force: true });
      }
    })();
    const jobAlone = await (async () => {
      const dir = join(root, 'j0');
      await makeChain(dir, osize, 1, 0.5);
      const vol = await Volume.open(new NodeDirNamespace(dir));
      try {
        const t0 = performance.now();
        const job = consolidate(vol, { op: 'delete-snapshot', name: 'base' });
        await job.done;
        return job.info().progress.done / 1e6 / ((performance.now() - t0) / 1000);
      } finally {
        await vol.close();
        await rm(dir, { recursive: true, force: true });
      }
    })();
    const withWriter = async (name: string, rateLimit?: number) => {
      const dir = join(root, name);
      await makeChain(dir, osize, 1, 0.5);
      const vol = await Volume.open(new NodeDirNamespace(dir));
      try {
        const t0 = performance.now();
        const job = consolidate(vol, { op: 'delete-snapshot', name: 'base' }, { rateLimit });
        let finished = false;
        const end = job.done.finally(() => (finished = true));
        const w = await writer(vol, () => finished, Infinity);
        await end;
        const jobRate = job.info().progress.done / 1e6 / ((performance.now() - t0) / 1000);
        return { jobRate, writerRate: w, direction: job.plan.direction };
      } finally {
        await vol.close();
        await rm(dir, { recursive: true, force: true });
      }
    };
    const both = await withWriter('j1');
    const limited = await withWriter('j2', (quick ? 16 : 32) * 1e6);
    const noteOnline = `${osize >> 20} MiB volume: full base (snapshot "base", deleted) under a half-allocated active delta; the job commits the delta ${both.direction} while a write mirror copies new writes; writer: random 64 KiB writes, flush every 32`;
    out.push(result('online consolidation: job throughput with a concurrent writer', both.jobRate, jobAlone, 'MB/s', 'the same job with no writer', undefined, noteOnline));
    out.push(result('online consolidation: writer throughput while the job runs', both.writerRate, writerAlone, 'MB/s', 'the same writer with no job running', undefined, noteOnline));
    const lim = `${quick ? 16 : 32} MB/s`;
    out.push(result(`online consolidation rate-limited to ${lim}: writer throughput (informative)`, limited.writerRate, writerAlone, 'MB/s', 'the same writer with no job running', undefined, `${noteOnline}; job at ${limited.jobRate.toFixed(1)} MB/s under a ${lim} limit`));
    return out;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
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

