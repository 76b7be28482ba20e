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
 *
 * Then TLS (X.509, client certificates verified on both servers, the same certificates): our
 * server over TLS vs `nbdkit --tls=require --tls-verify-peer file`, and vs our own server in
 * plain TCP (the cost of TLS), on 256 MiB; our server with serving processes as above (with TLS
 * they take each connection as accepted and negotiate it themselves). `qemu-img bench`
 * cannot take TLS credentials (no --object), so 4 KiB reads at depth 16 are measured with
 * nbdcopy (`--connections=1 --requests=16 --request-size=4096`, in order: from the page cache
 * the order matters little); sequential reads with nbdcopy at its defaults.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveNbd } from '../interop/nbd/index.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { pairedResult, result, runPairedRounds, type BenchResult } from './result.js';

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
    await sameData(raw, volDir, size);

    // One serving process per core (at most 4): nbdcopy opens several connections.
    const processes = Math.min(4, availableParallelism());
    server = await serveNbd({ dir: volDir }, { readOnly: true, processes, port: 0, insecure: true });
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
    const plain = [
      pairedResult('nbd sequential read (nbdcopy → null:)', oursSeq, peerSeq, 'MB/s', 'nbdkit file', 0.8, sizeNote),
      pairedResult('nbd random 4 KiB read (qemu-img bench, depth 16)', oursRnd, peerRnd, 'ops/s', 'nbdkit file', 0.8, `${randomOps} reads; ${sizeNote}`),
    ];
    nbdkit.kill('SIGTERM');
    nbdkit = undefined;
    await server.close();
    server = undefined;
    return [...plain, ...(await benchNbdTls(dir, quick))];
  } finally {
    nbdkit?.kill('SIGTERM');
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The TLS rows (see the top of this file); skipped without openssl or an nbdkit with TLS. */
async function benchNbdTls(dir: string, quick: boolean): Promise<BenchResult[]> {
  if (!(await exists('openssl'))) return [result('nbd TLS (skipped)', 0, 0, 'MB/s', 'nbdkit --tls=require', 0.8, 'openssl is not installed')];
  const size = quick ? 32 * MiB : 256 * MiB;
  const rounds = quick ? 2 : 5;
  const raw = join(dir, 'tls.raw');
  const volDir = join(dir, 'tls-vol');
  const certs = join(dir, 'pki');
  makeCertificates(certs);
  await sameData(raw, volDir, size);

  const tls = { cert: readFileSync(join(certs, 'server-cert.pem')), key: readFileSync(join(certs, 'server-key.pem')), ca: readFileSync(join(certs, 'ca-cert.pem')) };
  // One serving process per core (at most 4), as in the plain rows; with TLS each process
  // negotiates the connections it is given, TLS handshake included.
  const processes = Math.min(4, availableParallelism());
  const oursTls = await serveNbd({ dir: volDir }, { readOnly: true, tls, processes });
  const oursPlain = await serveNbd({ dir: volDir }, { readOnly: true, port: 0, insecure: true, processes });
  const port = await freePort();
  const nbdkit = spawn('nbdkit', ['-f', '-r', '-i', '127.0.0.1', '-p', String(port), '--tls=require', `--tls-certificates=${certs}`, '--tls-verify-peer', 'file', `file=${raw}`], { stdio: 'ignore' });
  const q = `?tls-certificates=${certs}`;
  const uris = { oursTls: `nbds://localhost:${oursTls.port}/${q}`, oursPlain: `nbd://localhost:${oursPlain.port}/`, nbdkit: `nbds://localhost:${port}/${q}` };
  try {
    await waitFor(async () => (await exec('nbdinfo', ['--size', uris.nbdkit])).code === 0);
    const seq = async (uri: string) => {
      const t0 = performance.now();
      await execOk('nbdcopy', [uri, 'null:']);
      return size / MiB / ((performance.now() - t0) / 1000);
    };
    const small = async (uri: string) => {
      const t0 = performance.now();
      await execOk('nbdcopy', ['--connections=1', '--requests=16', '--request-size=4096', uri, 'null:']);
      return size / 4096 / ((performance.now() - t0) / 1000);
    };
    for (const u of Object.values(uris)) await seq(u); // warm-up
    const [sTls, sPlain, sKit] = await runPairedRounds([() => seq(uris.oursTls), () => seq(uris.oursPlain), () => seq(uris.nbdkit)], rounds);
    const [rTls, rPlain, rKit] = await runPairedRounds([() => small(uris.oursTls), () => small(uris.oursPlain), () => small(uris.nbdkit)], rounds);
    const note = `${size / MiB} MiB of random data; ${rounds} rounds; X.509 with client certificates verified on both servers; our server: read-only, ${processes} serving processes; nbdkit file plugin, default threads`;
    const smallNote = `nbdcopy --connections=1 --requests=16 --request-size=4096 (qemu-img bench takes no TLS credentials); ${note}`;
    return [
      pairedResult('nbd TLS sequential read (nbdcopy → null:)', sTls!, sKit!, 'MB/s', 'nbdkit --tls=require file', 0.8, note),
      pairedResult('nbd TLS 4 KiB reads (nbdcopy, depth 16)', rTls!, rKit!, 'ops/s', 'nbdkit --tls=require file', 0.8, smallNote),
      pairedResult('nbd TLS vs plain, sequential read (nbdcopy → null:)', sTls!, sPlain!, 'MB/s', 'our server, plain TCP', undefined, note),
      pairedResult('nbd TLS vs plain, 4 KiB reads (nbdcopy, depth 16)', rTls!, rPlain!, 'ops/s', 'our server, plain TCP', undefined, smallNote),
    ];
  } finally {
    nbdkit.kill('SIGTERM');
    await oursTls.close();
    await oursPlain.close();
  }
}

/** A throwaway CA, a server certificate for localhost/127.0.0.1 and a client certificate (openssl), 0600 in a 0700 directory. */
function makeCertificates(dir: string): void {
  mkdirSync(dir, { mode: 0o700 });
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-days', '2', '-subj', '/CN=stratadisk bench CA', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  for (const [name, ext] of [
    ['server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'],
    ['client', 'extendedKeyUsage=clientAuth\n'],
  ] as const) {
    openssl(['req', ...ec, '-subj', `/CN=${name}`, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`]);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}-cert.pem`]);
  }
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o600);
}

export function exec(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', (e) => resolve({ code: 127, stderr: e.message }));
    p.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

export async function execOk(cmd: string, args: string[]): Promise<void> {
  const r = await exec(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

export async function exists(tool: string): Promise<boolean> {
  return (await exec('sh', ['-c', `command -v ${tool}`])).code === 0;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('nbdkit did not start listening in time');
}

/** The same random bytes into a raw file (the peer's) and a new volume (ours; 64 KiB blocks). */
export async function sameData(raw: string, volDir: string, size: number): Promise<void> {
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
}
