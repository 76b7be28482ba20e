/**
 * NBD serving: our server (read-only, its connections served by one child process per core:
 * `serve-nbd --read-only --processes N`) vs `nbdkit file` (its default
 * thread pool, serving the same bytes as a raw file), both on loopback TCP, driven by the same
 * external clients with the same command lines:
 * - sequential reads: `nbdcopy URI null:` (its defaults: multi-conn when offered, 256 KiB requests);
 * - random 4 KiB reads: `qemu-img bench` with queue depth 16 and a stride of 2561 blocks, which
 *   wraps around the image and visits every 4 KiB block once per cycle in a scattered order.
 * The clients run as child processes (spawned asynchronously: our server shares this process's
 * event loop). The data is random bytes, so nothing is a hole on either side.
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveNbd } from '../interop/nbd/index.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { pairedResult, result, type BenchResult } from './result.js';

const MiB = 1 << 20;

export async function benchNbd(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const size = quick ? 64 * MiB : 1024 * MiB;
  const randomOps = quick ? 20_000 : 100_000;
  const rounds = quick ? 2 : 7;
  for (const tool of ['nbdkit', 'nbdcopy', 'qemu-img']) {
    if (!(await exists(tool))) {
      return [result('nbd (skipped)', 0, 0, 'MB/s', 'nbdkit file', 0.8, `${tool} is not installed (run .ci/setup-system.sh)`)];
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'stratadisk-bench-nbd-'));
  const raw = join(dir, 'data.raw');
  const volDir = join(dir, 'vol');
  let nbdkit: ReturnType<typeof spawn> | undefined;
  let server: Awaited<ReturnType<typeof serveNbd>> | undefined;
  try {
    // The same random bytes into a raw file and into a volume (64 KiB blocks, the default).
    const v = await Volume.create(new NodeDirNamespace(volDir, { create: true }), { size });
    const file = await open(raw, 'w');
    const buf = new Uint8Array(8 * MiB);
    for (let at = 0; at < size; at += buf.length) {
      randomFillSync(buf);
      await file.write(buf, 0, buf.length, at);
      await v.write(at, buf);
    }
    await file.close();
    await v.close();

    // One serving process per core (at most 4): nbdcopy opens several connections.
    const processes = Math.min(4, availableParallelism());
    server = await serveNbd({ dir: volDir }, { readOnly: true, processes });
    const port = await freePort();
    nbdkit = spawn('nbdkit', ['-f', '-r', '-i', '127.0.0.1', '-p', String(port), 'file', `file=${raw}`], { stdio: 'ignore' });
    const peerUri = `nbd://127.0.0.1:${port}/`;
    await waitFor(async () => (await exec('nbdinfo', ['--size', peerUri])).code === 0);

    const seq = async (uri: string) => {
      const t0 = performance.now();
      await execOk('nbdcopy', [uri, 'null:']);
      return size / MiB / ((performance.now() - t0) / 1000);
    };
    const stride = String(4096 * 2561);
    const rnd = async (uri: string) => {
      const t0 = performance.now();
      await execOk('qemu-img', ['bench', '-f', 'raw', '-c', String(randomOps), '-d', '16', '-s', '4096', '-S', stride, uri]);
      return randomOps / ((performance.now() - t0) / 1000);
    };
    // Warm-up of both (page cache, connections), then paired rounds: in each, ours and the
    // peer back to back (the order turning round by round), so the load of other jobs on this
    // shared machine hits both alike; medians, and the median of the per-round ratios.
    await seq(server.uri);
    await seq(peerUri);
    const oursSeq: number[] = [];
    const peerSeq: number[] = [];
    const oursRnd: number[] = [];
    const peerRnd: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const first = i % 2 === 0;
      if (first) oursSeq.push(await seq(server.uri));
      peerSeq.push(await seq(peerUri));
      if (!first) oursSeq.push(await seq(server.uri));
      if (first) oursRnd.push(await rnd(server.uri));
      peerRnd.push(await rnd(peerUri));
      if (!first) oursRnd.push(await rnd(server.uri));
    }
    const sizeNote = `${size / MiB} MiB of random data; ${rounds} paired rounds; our server: read-only, ${processes} serving processes (one Node thread each); nbdkit file plugin, default threads (16)`;
    return [
      pairedResult('nbd sequential read (nbdcopy → null:)', oursSeq, peerSeq, 'MB/s', 'nbdkit file', 0.8, sizeNote),
      pairedResult('nbd random 4 KiB read (qemu-img bench, depth 16)', oursRnd, peerRnd, 'ops/s', 'nbdkit file', 0.8, `${randomOps} reads; ${sizeNote}`),
    ];
  } finally {
    nbdkit?.kill('SIGTERM');
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function exec(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', (e) => resolve({ code: 127, stderr: e.message }));
    p.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

async function execOk(cmd: string, args: string[]): Promise<void> {
  const r = await exec(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

async function exists(tool: string): Promise<boolean> {
  return (await exec('sh', ['-c', `command -v ${tool}`])).code === 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('nbdkit did not start listening in time');
}
