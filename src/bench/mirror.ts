/**
 * Mirror throughput (group `mirror`): a flattened mirror of a fully written volume (node-dir) to
 *  - a store server over loopback HTTP (RemoteNamespace -> `stratadisk serve-store`), vs
 *  - a local directory (NodeDirNamespace), the peer,
 * and a mirror to a raw image file vs the same local directory. Rounds are paired (each target
 * right after the peer), so load changes on the shared machine hit both. The store server runs
 * in a child process (`dist/cli/main.js serve-store`) when the build is there, else in-process.
 * Each copy ends with its fsyncs (flush + manifest), so the figures include durability.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mirror } from '../jobs/mirror.js';
import { mirrorRaw } from '../jobs/mirror-raw.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { NodeFileStore } from '../store/node-file.js';
import { RemoteNamespace } from '../store/remote.js';
import { serveStore } from '../store/store-server.js';
import { generateToken } from '../util/secret.js';
import { Volume } from '../volume/volume.js';
import { pairedResult, type BenchResult } from './result.js';

interface Server {
  url: string;
  close(): Promise<void>;
}

/** `serve-store dir` in a child process when dist/cli/main.js exists (else in this process). */
async function startServer(dir: string): Promise<Server & { where: string }> {
  const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  if (!existsSync(cli) || !import.meta.url.includes('/dist/')) {
    const s = await serveStore(dir);
    return { url: `${s.url}#token=${s.token}`, close: () => s.close(), where: 'in-process' };
  }
  // the token travels in the environment, never in argv
  const token = generateToken();
  const child: ChildProcess = spawn(process.execPath, [cli, 'serve-store', dir], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, STRATADISK_TOKEN: token } });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(`${buf.slice(0, nl).trim()}#token=${token}`);
    });
    child.once('exit', (c) => reject(new Error(`serve-store exited (${c})`)));
  });
  return {
    url,
    where: 'child process',
    close: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

export async function benchMirror(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const size = opts.quick ? 16 << 20 : 256 << 20;
  const rounds = opts.quick ? 1 : 3;
  const root = await mkdtemp(join(tmpdir(), 'stratadisk-bench-mirror-'));
  const served = join(root, 'served');
  await new NodeDirNamespace(served, { create: true }).list();
  const server = await startServer(served);
  try {
    const src = new NodeDirNamespace(join(root, 'src'), { create: true });
    const v = await Volume.create(src, { size, blockSize: 65536 });
    const chunk = new Uint8Array(4 << 20);
    for (let i = 0; i < chunk.length; i += 4) chunk[i] = (i * 2654435761) >>> 24 || 1;
    for (let at = 0; at < size; at += chunk.length) {
      chunk[0] = at >>> 20; // every chunk differs
      await v.write(at, chunk.subarray(0, Math.min(chunk.length, size - at)));
    }
    await v.flush();
    const mb = size / 1e6;
    const timed = async (fn: () => Promise<void>) => {
      const t0 = performance.now();
      await fn();
      return mb / ((performance.now() - t0) / 1000);
    };
    const net: number[] = [];
    const raw: number[] = [];
    const local: number[] = [];
    const localForRaw: number[] = [];
    let n = 0;
    const toDir = async () => {
      const j = mirror(v, new NodeDirNamespace(join(root, `dir-${n++}`), { create: true }), { flatten: true, switchOver: false, journal: false });
      await j.done;
    };
    for (let r = 0; r < rounds; r++) {
      local.push(await timed(toDir));
      const name = `net-${r}`;
      net.push(
        await timed(async () => {
          const [base, hash] = server.url.split('#');
          await mirror(v, new RemoteNamespace(`${base}${name}#${hash}`), { flatten: true, switchOver: false, journal: false }).done;
        }),
      );
      localForRaw.push(await timed(toDir));
      const store = await NodeFileStore.open(join(root, `raw-${r}.img`), { create: true });
      raw.push(await timed(() => mirrorRaw(v, store, { switchOver: false }).done));
      await store.close();
      for (let k = n - 2; k < n; k++) await rm(join(root, `dir-${k}`), { recursive: true, force: true });
      await rm(join(served, name), { recursive: true, force: true });
      await rm(join(root, `raw-${r}.img`), { force: true });
    }
    await v.close();
    const what = `${size >> 20} MiB fully written, flattened, incl. fsyncs; ${rounds} paired round(s)`;
    return [
      pairedResult('mirror to a store server over loopback HTTP', net, local, 'MB/s', 'mirror to a local directory', undefined, `${what}; server in a ${server.where}`),
      pairedResult('mirror to a raw image file', raw, localForRaw, 'MB/s', 'mirror to a local directory', undefined, what),
    ];
  } finally {
    await server.close();
    await rm(root, { recursive: true, force: true });
  }
}
