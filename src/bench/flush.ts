/**
 * Flush-heavy load (group `flush`): 16 concurrent writers on one volume, each looping
 * "write 4 KiB at a random block-aligned offset, then flush" for a fixed time, vs 16 writers on a
 * raw file of the same size and bytes, each looping pwrite + fdatasync (FileHandle.write +
 * FileHandle.datasync, one FileHandle per writer) for the same time. ops/s = completed
 * write+flush pairs per second. Issue 15 asks ≥ 1.0×: the volume's flushes should coalesce into
 * a group commit, where 16 fdatasyncs of a raw file each pay the device.
 *
 * Then, when fio is installed, its figures as the physical anchor: random 4 KiB writes at QD16
 * on the same raw file (buffered and O_DIRECT, io_uring or libaio), and 16 psync jobs with
 * fdatasync after each write (the device's own flush-per-op ceiling). Only the public Volume API
 * is used (write / flush with many promises in flight).
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { load1 } from './cpu.js';
import { prng } from './prng.js';
import { pairedResult, result, runPairedRounds, type BenchResult } from './result.js';

const run = promisify(execFile);
const MiB = 1 << 20;
const IO = 4096;
const WRITERS = 16;

export const FLUSH_ROW = 'flush-heavy: 16 writers, each 4 KiB write + flush per op';
export const FIO_ROW = 'fio anchor: random 4 KiB writes, QD16, raw file';

export async function benchFlush(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const size = quick ? 16 * MiB : 256 * MiB;
  const ms = quick ? 300 : 3000;
  const rounds = quick ? 1 : 3;
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-flush-'));
  const out: BenchResult[] = [];
  try {
    const raw = join(dir, 'data.raw');
    const vol = await Volume.create(new NodeDirNamespace(join(dir, 'vol'), { create: true }), { size });
    try {
      // The same random bytes on both sides, made durable before the timed runs.
      const file = await open(raw, 'w+', 0o600);
      try {
        const chunk = new Uint8Array(8 * MiB);
        for (let at = 0; at < size; at += chunk.length) {
          randomFillSync(chunk);
          await file.write(chunk, 0, chunk.length, at);
          await vol.write(at, chunk);
        }
        await file.datasync();
      } finally {
        await file.close();
      }
      await vol.flush();

      const pages = size / IO;
      const ours = (): Promise<number> =>
        loop(ms, async (w, stop) => {
          const rnd = prng(0x1000 + w);
          const buf = new Uint8Array(IO).fill(w + 1);
          let n = 0;
          while (!stop()) {
            await vol.write(Math.floor(rnd() * pages) * IO, buf);
            await vol.flush();
            n++;
          }
          return n;
        });
      const peer = async (): Promise<number> => {
        const handles = await Promise.all(Array.from({ length: WRITERS }, () => open(raw, 'r+')));
        try {
          return await loop(ms, async (w, stop) => {
            const rnd = prng(0x1000 + w);
            const buf = new Uint8Array(IO).fill(w + 1);
            const fh = handles[w]!;
            let n = 0;
            while (!stop()) {
              await fh.write(buf, 0, IO, Math.floor(rnd() * pages) * IO);
              await fh.datasync();
              n++;
            }
            return n;
          });
        } finally {
          await Promise.all(handles.map((h) => h.close()));
        }
      };
      // warm-up of both (JIT, file handles, the device's queue)
      await ours();
      await peer();
      const load0 = load1();
      const [o, p] = await runPairedRounds([ours, peer], rounds);
      const fio = (await fioVersion()) ? await fioFigures(raw, size, quick) : undefined;
      const r = pairedResult(FLUSH_ROW, o!, p!, 'ops/s', '16 writers on a raw file, pwrite + fdatasync per op (FileHandle.write + datasync)', 1.0,
        `${WRITERS} concurrent writers for ${ms / 1000} s per run, each op = one 4 KiB write at a random 4 KiB-aligned offset (seeded per writer, same offsets on both sides) and then a flush; ` +
          `${size / MiB} MiB, random bytes written and made durable first on both sides; ours: Volume.write + Volume.flush on NodeDirNamespace (64 KiB blocks, one layer; a 4 KiB write into a block rewrites it: read-modify-write of 64 KiB); ` +
          `peer: one FileHandle per writer on the raw file; ${rounds} paired rounds (medians)` +
          (fio ? `; physical anchor, fio 16 psync jobs, 4 KiB randwrite, fdatasync=1: ${Math.round(fio.fdatasync16)} ops/s` : '; fio not installed: no physical anchor'));
      r.load = [load0, load1()];
      out.push(r);

      if (fio) {
        // ours beside fio: 4 KiB random writes at QD16 on the volume, no flush (as fio's buffered run)
        const qd16 = (): Promise<number> =>
          loop(ms, async (w, stop) => {
            const rnd = prng(0x2000 + w);
            const buf = new Uint8Array(IO).fill(w + 1);
            let n = 0;
            while (!stop()) {
              await vol.write(Math.floor(rnd() * pages) * IO, buf);
              n++;
            }
            return n;
          });
        await qd16();
        const oursQd16 = await qd16();
        await vol.flush();
        out.push(result(FIO_ROW, oursQd16, fio.buffered, 'ops/s', `fio --rw=randwrite --bs=4k --iodepth=16 --ioengine=${fio.engine} (buffered)`, undefined,
          `physical anchor, not a target: ${size / MiB} MiB raw file, ${fio.seconds} s per fio run; fio O_DIRECT (--direct=1): ${Math.round(fio.direct)} ops/s (the device); ` +
            `fio 16 psync jobs with fdatasync after each write: ${Math.round(fio.fdatasync16)} ops/s; ` +
            `ours: Volume.write of 4 KiB at random aligned offsets, 16 in flight, no flush, ${ms / 1000} s (a one-layer volume, 64 KiB blocks); ${fio.version}`));
      }
    } finally {
      await vol.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

/** Run WRITERS copies of `body` until `ms` have passed; ops per second over the whole run (until the last finishes). */
async function loop(ms: number, body: (writer: number, stop: () => boolean) => Promise<number>): Promise<number> {
  const t0 = performance.now();
  const stop = (): boolean => performance.now() - t0 >= ms;
  const counts = await Promise.all(Array.from({ length: WRITERS }, (_, w) => body(w, stop)));
  const total = counts.reduce((a, b) => a + b, 0);
  return (total * 1000) / (performance.now() - t0);
}

async function fioVersion(): Promise<string | null> {
  try {
    return (await run('fio', ['--version'])).stdout.trim();
  } catch {
    return null;
  }
}

interface FioFigures {
  buffered: number;
  direct: number;
  fdatasync16: number;
  engine: string;
  seconds: number;
  version: string;
}

/** fio's write IOPS for the anchors (see the top of this file); runs on the existing raw file. */
async function fioFigures(raw: string, size: number, quick: boolean): Promise<FioFigures> {
  const seconds = quick ? 0.3 : 3;
  const fio = async (args: string[]): Promise<number> => {
    const { stdout } = await run('fio', ['--name=anchor', `--filename=${raw}`, `--size=${size}`, '--rw=randwrite', '--bs=4k', '--time_based', `--runtime=${Math.round(seconds * 1000)}ms`, '--randrepeat=0', '--output-format=json', ...args], { maxBuffer: 16 << 20 });
    const j = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: { write: { iops: number } }[] };
    return j.jobs.reduce((a, job) => a + job.write.iops, 0);
  };
  let engine = 'io_uring';
  let buffered: number;
  try {
    buffered = await fio([`--ioengine=${engine}`, '--iodepth=16']);
  } catch {
    engine = 'libaio';
    buffered = await fio([`--ioengine=${engine}`, '--iodepth=16']);
  }
  const direct = await fio([`--ioengine=${engine}`, '--iodepth=16', '--direct=1']);
  const fdatasync16 = await fio(['--ioengine=psync', '--fdatasync=1', `--numjobs=${WRITERS}`, '--group_reporting']);
  return { buffered, direct, fdatasync16, engine, seconds, version: (await fioVersion()) ?? 'fio' };
}
