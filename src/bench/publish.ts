/**
 * Publish vs `casync make` (Debian casync), in the same run, on the same bytes:
 *
 * - a volume of 1 GiB (64 MiB with `quick`) with 64 KiB blocks, random (incompressible) data in a
 *   random half of the blocks, the rest never written; a sparse raw file with the same bytes;
 * - first publish: ours publishes the volume into an empty local-directory object store; casync
 *   makes a blob index of the raw file into an empty chunk store (its defaults: content-defined
 *   chunks of 64 KiB on average, zstd). Figures: MB/s of virtual size, and bytes stored;
 * - second publish after 1% of the volume's blocks were rewritten with new random data (spread
 *   over the allocated blocks): bytes uploaded (every object written: packs, indexes, segments,
 *   manifest, tag) per changed byte, and casync's new chunk files per changed byte.
 *
 * The machine is shared (other jobs run): each figure carries the 1-minute load average.
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NodeDirNamespace } from '../store/node-dir.js';
import { DirObjectStore } from '../transfer/dir-objects.js';
import { publish } from '../transfer/publish.js';
import { Volume } from '../volume/volume.js';
import { load1 } from './cpu.js';
import { prng } from './prng.js';
import { result, type BenchResult } from './result.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const BLOCK = 64 * 1024;

/** every file under `dir` with its size */
async function files(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.set(p, (await stat(p)).size);
    }
  };
  await walk(dir).catch(() => {});
  return out;
}
const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

export async function benchPublish(opts: { quick?: boolean; keep?: boolean } = {}): Promise<BenchResult[]> {
  let haveCasync = true;
  try {
    await run('casync', ['--version']);
  } catch {
    haveCasync = false;
  }
  const size = opts.quick ? 64 * MiB : 1024 * MiB;
  const label = opts.quick ? '64 MiB' : '1 GiB';
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-publish-'));
  try {
    const volDir = join(dir, 'vol');
    const raw = join(dir, 'disk.raw');
    const v = await Volume.create(new NodeDirNamespace(volDir, { create: true }), { size, blockSize: BLOCK });
    const chosen: number[] = [];
    const fd = openSync(raw, 'w');
    try {
      const rnd = prng(0x5eed);
      for (let b = 0; b < size / BLOCK; b++) if (rnd() < 0.5) chosen.push(b);
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

    const store = join(dir, 'objects');
    const castr = join(dir, 'castore.castr');
    const out: BenchResult[] = [];
    const loadStart = load1();

    // First publish.
    let t = performance.now();
    const objects = await DirObjectStore.open(store, { create: true });
    const first = await publish(objects, v, { image: 'disk', parallel: 4 });
    const oursMs = performance.now() - t;
    const oursStored = total(await files(store));
    let casMs = 0;
    let casStored = 0;
    if (haveCasync) {
      t = performance.now();
      await run('casync', ['make', `--store=${castr}`, join(dir, 'v1.caibx'), raw], { maxBuffer: 16 * MiB });
      casMs = performance.now() - t;
      casStored = total(await files(castr));
    }
    const loadMid = load1();
    const mbps = (ms: number) => (ms > 0 ? size / 1e6 / (ms / 1000) : 0);
    const note = (extra: string) => `${extra}${haveCasync ? '' : ' (casync is not installed: peer 0)'}; load ${loadStart.toFixed(1)}→${loadMid.toFixed(1)}`;
    out.push(result(`publish ${label} half-allocated: throughput`, mbps(oursMs), mbps(casMs), 'MB/s', 'casync make', undefined, note(`ours ${(oursMs / 1000).toFixed(2)} s, casync ${(casMs / 1000).toFixed(2)} s; ${first.packsWritten} packs, ${first.chunks} chunks`)));
    out.push(result(`publish ${label} half-allocated: bytes stored`, oursStored / 1e6, casStored / 1e6, 'MB (lower is better)', 'casync make', undefined, note(`${first.chunks * BLOCK} bytes of data`)));

    // Second publish: 1% of the volume's blocks rewritten.
    const rnd = prng(0xc4a9);
    const changedBlocks = Math.ceil(size / BLOCK / 100);
    const picked = new Set<number>();
    while (picked.size < changedBlocks) picked.add(chosen[Math.floor(rnd() * chosen.length)]!);
    const fd2 = openSync(raw, 'r+');
    try {
      const buf = new Uint8Array(BLOCK);
      for (const b of picked) {
        randomFillSync(buf);
        await v.write(b * BLOCK, buf);
        writeSync(fd2, buf, 0, BLOCK, b * BLOCK);
      }
    } finally {
      closeSync(fd2);
    }
    await v.flush();
    const changed = changedBlocks * BLOCK;
    t = performance.now();
    const second = await publish(objects, v, { image: 'disk', parallel: 4 });
    const ours2Ms = performance.now() - t;
    let casNew = 0;
    let cas2Ms = 0;
    if (haveCasync) {
      const before = await files(castr);
      t = performance.now();
      await run('casync', ['make', `--store=${castr}`, join(dir, 'v2.caibx'), raw], { maxBuffer: 16 * MiB });
      cas2Ms = performance.now() - t;
      const after = await files(castr);
      for (const [p, n] of after) if (!before.has(p)) casNew += n;
    }
    const loadEnd = load1();
    const r = result(
      `republish after 1% changed blocks: bytes uploaded / changed bytes`,
      second.bytesUploaded / changed,
      casNew / changed,
      'x changed bytes (lower is better)',
      "casync make (new chunk files)",
      undefined,
      `changed ${changed} bytes; ours uploaded ${second.bytesUploaded} (packs ${second.packBytesUploaded}, index ${second.indexBytesUploaded}) in ${(ours2Ms / 1000).toFixed(2)} s; casync new chunks ${casNew} bytes in ${(cas2Ms / 1000).toFixed(2)} s; load ${loadMid.toFixed(1)}→${loadEnd.toFixed(1)}`,
    );
    r.target = 1.1;
    r.met = second.packBytesUploaded <= 1.1 * changed;
    out.push(r);
    await v.close();
    return out;
  } finally {
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  }
}
