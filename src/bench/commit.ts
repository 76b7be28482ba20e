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
 * 2. Online consolidation with a concurrent writer: see commit-online.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportQcow2 } from '../interop/qcow2/export.js';
import { consolidate } from '../jobs/consolidate.js';
import { childCpuSeconds, ownCpuSeconds } from './cpu.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { makeChain } from './commit-chain.js';
import { benchOnlineConsolidation } from './commit-online.js';
import { pairedResult, type BenchResult } from './result.js';

const run = promisify(execFile);
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

    out.push(...(await benchOnlineConsolidation({ quick, root })));
    return out;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
