/**
 * qcow2 import benchmark: a qcow2 image of 1 GiB (quick: 64 MiB) with random data in half of its
 * 64 KiB clusters, imported into a new volume (importQcow2, including the final flush) vs
 * `qemu-img convert -f qcow2 -O qcow2` of the same image into a new file (the "between
 * the same formats") and, as an informative second peer, `qemu-img convert -O raw`.
 * Figures are MB/s of virtual size (10^6 bytes): medians of paired rounds (every side once per
 * round), the ratio being the median of the per-round ratios. The image is read from the page
 * cache on every side. `-t writeback` makes qemu-img sync its output at the end, as we do.
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, writeSync, ftruncateSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { importQcow2 } from '../interop/qcow2/import.js';
import { pairedResult, type BenchResult } from './result.js';
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
    const time = async (fn: () => Promise<unknown>, cleanup: () => Promise<void>): Promise<number> => {
      await cleanup();
      const t0 = performance.now();
      await fn();
      const s = (performance.now() - t0) / 1000;
      await cleanup();
      return size / 1e6 / s;
    };
    const vol = join(dir, 'vol');
    const outQcow2 = join(dir, 'out.qcow2');
    const outRaw = join(dir, 'out.raw');
    const sides: (() => Promise<number>)[] = [
      () => time(() => importQcow2(vol, image), () => rm(vol, { recursive: true, force: true })),
      // `-t writeback` makes qemu-img flush its output at the end, as our import does; the
      // default (`unsafe`) never syncs and is reported as a second, informative figure.
      () => time(() => run('qemu-img', ['convert', '-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2', image, outQcow2]), () => rm(outQcow2, { force: true })),
      () => time(() => run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'qcow2', image, outQcow2]), () => rm(outQcow2, { force: true })),
      () => time(() => run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', image, outRaw]), () => rm(outRaw, { force: true })),
    ];
    const figures: number[][] = sides.map(() => []);
    for (let round = 0; round < rounds; round++) {
      const order = sides.map((_, i) => i);
      if (round % 2 === 1) order.reverse();
      for (const i of order) figures[i]!.push(await sides[i]!());
    }
    const [ours, qcow2, qcow2Unsafe, rawPeer] = figures as [number[], number[], number[], number[]];
    const note = `${size >> 20} MiB virtual, ${allocated} of ${size / CLUSTER} 64 KiB clusters allocated (random data); ${rounds} paired rounds, medians, ratio = median of per-round ratios; both sides sync the output at the end`;
    return [
      pairedResult('qcow2 import (half allocated)', ours, qcow2, 'MB/s', 'qemu-img convert -t writeback -O qcow2', 1.0, note),
      pairedResult('qcow2 import vs convert without sync (informative)', ours, qcow2Unsafe, 'MB/s', 'qemu-img convert -O qcow2 (cache=unsafe: never syncs)', undefined, note),
      pairedResult('qcow2 import vs convert to raw (informative)', ours, rawPeer, 'MB/s', 'qemu-img convert -O raw', undefined, note),
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
