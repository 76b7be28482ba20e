/**
 * qcow2 export vs `qemu-img convert`, in the same run, on the same bytes:
 *
 * - a volume of 1 GiB (64 MiB with `quick`) with 64 KiB blocks, random data in a random half of
 *   the blocks, the rest never written;
 * - ours: `exportQcow2` of the volume (flattened, 64 KiB clusters);
 * - peer 1: `qemu-img convert -f raw -O qcow2` of a sparse raw file holding the same bytes;
 * - peer 2: `qemu-img convert -f qcow2 -O qcow2` of a qcow2 holding the same bytes ("between the
 *   same formats").
 *
 * Figures are MB/s of virtual size (1 MB = 10^6 bytes). Both sides write durably: ours ends with
 * fdatasync, and qemu-img runs with `-t writeback` (it flushes before closing), so neither is
 * credited for leaving dirty pages behind. Both read from the page cache (just written).
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
import { result, type BenchResult } from './result.js';
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


async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

export async function benchQcow2Export(opts: Qcow2ExportBenchOptions = {}): Promise<BenchResult[]> {
  try {
    await run('qemu-img', ['--version']);
  } catch {
    return [result('qcow2 export', 0, 0, 'MB/s', 'qemu-img convert', 1.0, 'skipped: qemu-img is not installed (bash .ci/setup-system.sh)')];
  }
  const size = opts.quick ? 64 * MiB : 1024 * MiB;
  const rounds = opts.quick ? 3 : 5;
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
    // Rounds interleave the three contenders, so a burst of load elsewhere on the machine hits
    // all of them alike; each side keeps its best round.
    const t = { ours: Infinity, raw: Infinity, qcow2: Infinity };
    for (let i = 0; i < rounds; i++) {
      await clear(ours);
      t.ours = Math.min(t.ours, await timed(() => exportQcow2(v, ours)));
      await clear(peer);
      t.raw = Math.min(t.raw, await timed(() => run('qemu-img', ['convert', '-t', 'writeback', '-f', 'raw', '-O', 'qcow2', raw, peer])));
      await clear(peer);
      t.qcow2 = Math.min(t.qcow2, await timed(() => run('qemu-img', ['convert', '-t', 'writeback', '-f', 'qcow2', '-O', 'qcow2', srcQcow2, peer])));
    }
    const [tOurs, tRaw, tQcow2] = [t.ours, t.raw, t.qcow2];
    await v.close();

    const mbps = (s: number) => size / 1e6 / s;
    const label = `${size / MiB} MiB, half allocated, 64 KiB blocks/clusters; best of ${rounds} interleaved rounds; both sides fdatasync`;
    return [
      result('qcow2 export vs convert from raw', mbps(tOurs), mbps(tRaw), 'MB/s', 'qemu-img convert -f raw -O qcow2 (sparse raw)', 1.0, label),
      result('qcow2 export vs convert qcow2->qcow2', mbps(tOurs), mbps(tQcow2), 'MB/s', 'qemu-img convert -f qcow2 -O qcow2', 1.0, label),
    ];
  } finally {
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  }
}
