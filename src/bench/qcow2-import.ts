/**
 * qcow2 import benchmark: a qcow2 image of 1 GiB (quick: 64 MiB) with random data in half of its
 * 64 KiB clusters, imported into a new volume (importQcow2, including the final flush) vs
 * `qemu-img convert -f qcow2 -O qcow2` of the same image into a new file (the "between
 * the same formats") and, as an informative second peer, `qemu-img convert -O raw`.
 * Figures are MB/s of virtual size (10^6 bytes): medians of paired rounds (every side once per
 * round), the ratio being the median of the per-round ratios. The image is read from the page
 * cache on every side. `-t writeback` makes qemu-img sync its output at the end, as we do. CPU
 * time (user+system, all threads) per GiB is reported for both sides; our batches reach the
 * volume's data file with O_DIRECT (page-aligned buffers, see NodeFileStore), and qemu's own
 * O_DIRECT mode (`-t none`) is an informative peer.
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, writeSync, ftruncateSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { importQcow2 } from '../interop/qcow2/import.js';
import { childCpuSeconds, load1, ownCpuSeconds } from './cpu.js';
import { median, pairedResult, runPairedRounds, type BenchResult } from './result.js';
import { prng } from './prng.js';

const run = promisify(execFile);
const CLUSTER = 64 * 1024;


export async function benchQcow2Import(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const size = opts.quick ? 64 << 20 : 1 << 30;
  const rounds = opts.quick ? 2 : 7;
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-qcow2-import-'));
  try {
    // A sparse raw file with random data in half the clusters, converted by qemu-img: the image
    // has exactly those clusters allocated.
    const raw = join(dir, 'src.raw');
    const fd = openSync(raw, 'w');
    const rnd = prng(42);
    const buf = new Uint8Array(CLUSTER);
    let allocated = 0;
    try {
      ftruncateSync(fd, size);
      for (let c = 0; c < size / CLUSTER; c++) {
        if (rnd() < 0.5) continue;
        randomFillSync(buf);
        writeSync(fd, buf, 0, CLUSTER, c * CLUSTER);
        allocated++;
      }
    } finally {
      closeSync(fd);
    }
    const image = join(dir, 'src.qcow2');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-o', `cluster_size=${CLUSTER}`, raw, image]);
    await rm(raw);

    // Paired rounds: each round runs ours and every peer back to back (the order turning
    // round by round), so load from other jobs on this shared machine hits all of them alike.
    // Each run gives [MB/s, CPU seconds (user+system, all threads) per GiB of virtual size].
    const GiB = size / 2 ** 30;
    const time = async (fn: () => Promise<unknown>, cleanup: () => Promise<void>, cpu: () => number): Promise<[number, number]> => {
      await cleanup();
      const c0 = cpu();
      const t0 = performance.now();
      await fn();
      const s = (performance.now() - t0) / 1000;
      const c = cpu() - c0;
      await cleanup();
      return [size / 1e6 / s, c / GiB];
    };
    const vol = join(dir, 'vol');
    const outQcow2 = join(dir, 'out.qcow2');
    const outRaw = join(dir, 'out.raw');
    const qemu = (args: string[], out: string) => time(() => run('qemu-img', ['convert', ...args, image, out]), () => rm(out, { force: true }), childCpuSeconds);
    const sides: (() => Promise<[number, number]>)[] = [
      () => time(() => importQcow2(vol, image), () => rm(vol, { recursive: true, force: true }), ownCpuSeconds),
      // `-t writeback` makes qemu-img fdatasync its output when it closes it, as our import
      // syncs at the end; the default (`unsafe`) never syncs and is reported as informative.
      () => qemu(['-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2'], outQcow2),
      () => qemu(['-f', 'qcow2', '-O', 'qcow2'], outQcow2),
      () => qemu(['-f', 'qcow2', '-O', 'raw'], outRaw),
      // qemu's own O_DIRECT output, as our volume's data file is written (informative)
      () => qemu(['-t', 'none', '-f', 'qcow2', '-O', 'qcow2'], outQcow2),
    ];
    const loadStart = load1();
    const figures = await runPairedRounds(sides, rounds);
    const load: [number, number] = [loadStart, load1()];
    const mbps = (k: number) => figures[k]!.map((f) => f[0]);
    const cpu = (k: number) => Math.round(median(figures[k]!.map((f) => f[1])) * 1000) / 1000;
    const note = `${size >> 20} MiB virtual, ${allocated} of ${size / CLUSTER} 64 KiB clusters allocated (random data); ${rounds} paired rounds, medians, ratio = median of per-round ratios; ours writes the volume's data with O_DIRECT and syncs data then map at the end; qemu-img -t writeback fdatasyncs its output at close; load ${load[0]}→${load[1]}`;
    const row = (name: string, k: number, peerName: string, target?: number): BenchResult => ({
      ...pairedResult(name, mbps(0), mbps(k), 'MB/s', peerName, target, note),
      oursCpuPerGiB: cpu(0),
      peerCpuPerGiB: cpu(k),
      load,
    });
    return [
      row('qcow2 import (half allocated)', 1, 'qemu-img convert -t writeback -O qcow2', 1.0),
      row('qcow2 import vs convert without sync (informative)', 2, 'qemu-img convert -O qcow2 (cache=unsafe: never syncs)'),
      row('qcow2 import vs convert to raw (informative)', 3, 'qemu-img convert -O raw'),
      row('qcow2 import vs convert with O_DIRECT output (informative)', 4, 'qemu-img convert -t none -O qcow2'),
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
