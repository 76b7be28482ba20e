/**
 * NBD random writes (part of group `nbd`): `qemu-img bench -w -d 16 -s 4096` through our NBD
 * server (writable, one process: serving processes are for read-only exports) vs the same
 * command line through `nbdkit file` (its default thread pool) on a raw file of the same size
 * holding the same bytes, both on loopback TCP. qemu-img runs as a child process (spawned
 * asynchronously: our server shares this process's event loop), with its default cache mode
 * (writeback: no flush inside the timed run on either side). Paired rounds, alternating order.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { serveNbd } from '../interop/nbd/index.js';
import { exec, exists, freePort, sameData, waitFor } from './nbd.js';
import { pairedResult, result, runPairedRounds, type BenchResult } from './result.js';

const MiB = 1 << 20;
const run = promisify(execFile);
export const NBD_WRITE_ROW = 'nbd random 4 KiB writes (qemu-img bench -w, depth 16)';

export async function benchNbdWrite(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const size = quick ? 32 * MiB : 1024 * MiB;
  const ops = quick ? 4000 : 60_000;
  const rounds = quick ? 1 : 5;
  for (const tool of ['nbdkit', 'nbdinfo', 'qemu-img']) {
    if (!(await exists(tool))) return [result(`${NBD_WRITE_ROW} (skipped)`, 0, 0, 'ops/s', 'nbdkit file', 0.8, `${tool} is not installed (run .ci/setup-system.sh)`)];
  }
  const dir = mkdtempSync(join(tmpdir(), 'stratadisk-bench-nbdw-'));
  const raw = join(dir, 'data.raw');
  const volDir = join(dir, 'vol');
  let nbdkit: ReturnType<typeof spawn> | undefined;
  let server: Awaited<ReturnType<typeof serveNbd>> | undefined;
  try {
    await sameData(raw, volDir, size);
    server = await serveNbd({ dir: volDir }, { port: 0, insecure: true });
    const port = await freePort();
    nbdkit = spawn('nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(port), 'file', `file=${raw}`], { stdio: 'ignore' });
    const peerUri = `nbd://127.0.0.1:${port}/`;
    await waitFor(async () => (await exec('nbdinfo', ['--size', peerUri])).code === 0);
    // An odd stride of 4 KiB pages: wraps around the image, visiting its pages in a scattered order.
    const stride = String(4096 * 2561);
    // qemu-img's own timing of the run ("Run completed in X seconds"): its start-up and the NBD
    // handshake are outside it on both sides.
    const writes = async (uri: string, count = ops): Promise<number> => {
      const { stdout } = await run('qemu-img', ['bench', '-f', 'raw', '-w', '--pattern=171', '-c', String(count), '-d', '16', '-s', '4096', '-S', stride, uri], { maxBuffer: 1 << 20 });
      const m = /Run completed in ([0-9.]+) seconds/.exec(stdout);
      if (!m || !(Number(m[1]) > 0)) throw new Error(`qemu-img bench printed no timing: ${stdout}`);
      return count / Number(m[1]);
    };
    // warm-up of both (connections, JIT, page cache of the written pages)
    await writes(server.uri, Math.min(ops, 2000));
    await writes(peerUri, Math.min(ops, 2000));
    const [ours, peer] = await runPairedRounds([() => writes(server!.uri), () => writes(peerUri)], rounds);
    return [
      pairedResult(NBD_WRITE_ROW, ours!, peer!, 'ops/s', 'nbdkit file (raw file, same size and bytes)', 0.8,
        `${ops} writes of 4 KiB (0xab) at offsets (i*2561 pages) mod size, 16 in flight, one connection; ${size / MiB} MiB image, random data written first on both sides; ` +
          `ours: serveNbd writable (one Node thread; 64 KiB blocks, one layer), the same server as \`serve-nbd --insecure --port\`; nbdkit file plugin, default threads; ` +
          `qemu-img bench -f raw with its default cache (writeback: no flush in the timed run); timed by qemu-img itself (\`Run completed in\`: start-up and handshake excluded on both sides); ${rounds} paired rounds (medians)`),
    ];
  } finally {
    nbdkit?.kill('SIGTERM');
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
