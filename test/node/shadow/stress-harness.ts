/**
 * The Node side of the shadow stress test: a writer in this thread hammering a file volume
 * while passive readers in worker_threads (or child processes) verify a shadow copy.
 * Readers run the built code (dist/bench/shadow-reader.worker.js): run `npm run build` first.
 */
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import { blockSums, hammer, type VerifyResult } from '../../../src/bench/shadow-load.js';
import { ShadowVolume } from '../../../src/shadow/index.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { NodeFileStore } from '../../../src/store/node-file.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { Rng } from '../helpers/random.js';

const dist = fileURLToPath(new URL('../../../dist/bench/', import.meta.url));

export interface StressOptions {
  blockSize: number;
  blocks: number;
  readers: { kind: 'shared' | 'message' | 'process' }[];
  /** block reads per reader */
  perReader: number;
  maxRun: number;
  recheck: boolean;
  rotateEvery?: number;
  /** the writer flushes (a group commit) every this many writes */
  flushEvery?: number;
  seed: number;
}

export interface StressOutcome {
  results: VerifyResult[];
  writes: number;
  rotations: number;
}

export async function runStress(o: StressOptions): Promise<StressOutcome> {
  await loadKernels();
  // tmpfs where there is one: this test is about the reader protocol, not the disk's fsync.
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = await mkdtemp(join(base, 'sd-shadow-stress-'));
  const volumePath = join(dir, 'volume.raw');
  const shadowDir = join(dir, 'shadows');
  const content = new Rng(o.seed).bytes(o.blockSize * o.blocks);
  await writeFile(volumePath, content);
  const sums = blockSums(content, o.blockSize);
  const sv = await ShadowVolume.open(await NodeFileStore.open(volumePath), new NodeDirNamespace(shadowDir, { create: true }), { blockSize: o.blockSize });
  await sv.createShadow({ name: 'stress' });
  // Before any reader starts, preserve a seeded set of blocks and commit: the readers' seeded
  // reads then find blocks in the diff area whatever the scheduling (not only if the writer
  // happened to get ahead of them).
  const pre = new Rng(o.seed + 1);
  for (let i = 0; i < 256; i++) await sv.write(pre.int(o.blocks) * o.blockSize, pre.bytes(o.blockSize));
  await sv.flush();
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const cleanups: (() => void)[] = [];
  try {
    const done = o.readers.map((r, i) => {
      const verify = { blockReads: o.perReader, maxRun: o.maxRun, seed: o.seed * 100 + i + 1 };
      return new Promise<VerifyResult>((resolve, reject) => {
        const onMsg = (m: { t: string; result?: VerifyResult; message?: string }): void => {
          if (m.t === 'done') resolve(m.result!);
          else if (m.t === 'error') reject(new Error(`reader ${i}: ${m.message}`));
        };
        if (r.kind === 'process') {
          const child = fork(join(dist, 'shadow-reader-process.js'), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
          cleanups.push(sv.serve(child), () => child.kill());
          child.on('message', onMsg);
          child.on('exit', (code) => code && reject(new Error(`reader process ${i} exited with ${code}`)));
          child.send({ t: 'params', volumePath, shadowDir, copy: 'stress', sums, verify });
        } else {
          const ch = new MessageChannel();
          cleanups.push(sv.serve(ch.port1), () => ch.port1.close());
          const w = new Worker(join(dist, 'shadow-reader.worker.js'), {
            workerData: { volumePath, shadowDir, copy: 'stress', mode: r.kind, port: ch.port2, sums, verify, recheck: o.recheck },
            transferList: [ch.port2],
          });
          cleanups.push(() => void w.terminate());
          w.on('message', onMsg);
          w.on('error', reject);
        }
      });
    });
    const all = Promise.all(done).finally(() => Atomics.store(stop, 0, 1));
    const [results, h] = await Promise.all([all, hammer(sv, { maxRun: 4, seed: o.seed, stop, rotateEvery: o.rotateEvery, maxRotations: 20, flushEvery: o.flushEvery })]);
    return { results, writes: h.writes, rotations: h.rotations };
  } finally {
    Atomics.store(stop, 0, 1);
    for (const c of cleanups) c();
    await sv.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}
