/**
 * qcow2 export vs `qemu-img convert`, in the same run, on the same bytes:
 *
 * - a volume of 1 GiB (64 MiB with `quick`) with 64 KiB blocks, random data in a random half of
 *   the blocks, the rest never written;
 * - ours: `exportQcow2` of the volume (flattened, 64 KiB clusters);
 * - peer: `qemu-img convert -f qcow2 -O qcow2` of a qcow2 holding the same bytes ("between the
 *   same formats"); also, informative, `-f raw` from a sparse raw file with the same bytes, and
 *   `-t none` (qemu's own O_DIRECT output).
 *
 * Figures are MB/s of virtual size (1 MB = 10^6 bytes), medians of paired rounds (every side
 * once per round, the order turning round by round, so load elsewhere on a shared machine hits
 * all alike); the ratio is the median of the per-round ratios, with their range. CPU time
 * (user+system, all threads) per GiB of virtual size is reported for both sides.
 *
 * Durability: both sides end with the output on stable storage. Ours writes the data with
 * O_DIRECT (page-aligned 4 MiB buffers; see NodeFileStore) and ends with fdatasync; qemu-img
 * with `-t writeback` writes through the page cache and fdatasyncs the image when it closes it.
 * The source is read from the page cache on every side (just written).
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportQcow2 } from '../interop/qcow2/export.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { childCpuSeconds, load1, ownCpuSeconds } from './cpu.js';
import { median, pairedResult, result, runPairedRounds, type BenchResult } from './result.js';
import { prng } from './prng.js';

const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;

export interface Qcow2ExportBenchOptions {
  quick?: boolean;
  /** keep the temp directory (for debugging) */
  keep?: boolean;
}

export async function benchQcow2Export(opts: Qcow2ExportBenchOptions = {}): Promise<BenchResult[]> {
  try {
    await run('qemu-img', ['--version']);
  } catch {
    return [result('qcow2 export', 0, 0, 'MB/s', 'qemu-img convert', 1.0, 'skipped: qemu-img is not installed (bash .ci/setup-system.sh)')];
  }
  const size = opts.quick ? 64 * MiB : 1024 * MiB;
  const rounds = opts.quick ? 2 : 7;
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-qcow2x-'));
  try {
    // The same bytes three ways: a volume, a sparse raw file, and (from it) a qcow2.
    const volDir = join(dir, 'vol');
    const raw = join(dir, 'src.raw');
    const srcQcow2 = join(dir, 'src.qcow2');
    const v = await Volume.create(new NodeDirNamespace(volDir, { create: true }), { size, blockSize: BLOCK });
    const fd = openSync(raw, 'w');
    try {
      const blocks = size / BLOCK;
      const rnd = prng(0x5eed);
      const chosen: number[] = [];
      for (let b = 0; b < blocks; b++) if (rnd() < 0.5) chosen.push(b);
      const buf = new Uint8Array(BLOCK);
      for (const b of chosen) {
        randomFillSync(buf);
        await v.write(b * BLOCK, buf);
        writeSync(fd, buf, 0, BLOCK, b * BLOCK);
      }
      ftruncateSync(fd, size);
    } finally {
      closeSync(fd);
    }
    await v.flush();
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, srcQcow2]);

    const ours = join(dir, 'ours.qcow2');
    const peer = join(dir, 'peer.qcow2');
    const clear = (f: string) => unlink(f).catch(() => {});
    const GiB = size / (1024 * MiB);
    /** one timed run: [MB/s, CPU s per GiB]; the output is removed before and after (untimed) */
    const timed = async (out: string, fn: () => Promise<unknown>, cpu: () => number): Promise<[number, number]> => {
      await clear(out);
      const c0 = cpu();
      const t0 = performance.now();
      await fn();
      const s = (performance.now() - t0) / 1000;
      const c = cpu() - c0;
      await clear(out);
      return [size / 1e6 / s, c / GiB];
    };
    const qemu = (args: string[]) => timed(peer, () => run('qemu-img', ['convert', ...args, '-O', 'qcow2', ...(args.includes('raw') ? [raw] : [srcQcow2]), peer]), childCpuSeconds);
    const sides: (() => Promise<[number, number]>)[] = [
      () => timed(ours, () => exportQcow2(v, ours), ownCpuSeconds),
      () => qemu(['-t', 'writeback', '-f', 'qcow2']),
      () => qemu(['-t', 'writeback', '-f', 'raw']),
      () => qemu(['-t', 'none', '-f', 'qcow2']),
    ];
    const loadStart = load1();
    const figures = await runPairedRounds(sides, rounds);
    const load: [number, number] = [loadStart, load1()];
    await v.close();

    const mbps = (k: number) => figures[k]!.map((f) => f[0]);
    const cpu = (k: number) => Math.round(median(figures[k]!.map((f) => f[1])) * 1000) / 1000;
    const note = `${size / MiB} MiB, half allocated, 64 KiB blocks/clusters; ${rounds} paired rounds, medians, ratio = median of per-round ratios; ours writes with O_DIRECT + fdatasync, qemu-img -t writeback through the page cache + fdatasync at close; load ${load[0]}→${load[1]}`;
    const row = (name: string, k: number, peerName: string, target?: number): BenchResult => ({
      ...pairedResult(name, mbps(0), mbps(k), 'MB/s', peerName, target, note),
      oursCpuPerGiB: cpu(0),
      peerCpuPerGiB: cpu(k),
      load,
    });
    return [
      row('qcow2 export vs convert qcow2->qcow2', 1, 'qemu-img convert -t writeback -f qcow2 -O qcow2', 1.0),
      row('qcow2 export vs convert from raw', 2, 'qemu-img convert -t writeback -f raw -O qcow2 (sparse raw)', 1.0),
      row('qcow2 export vs convert with O_DIRECT output (informative)', 3, 'qemu-img convert -t none -f qcow2 -O qcow2'),
    ];
  } finally {
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  }
}
