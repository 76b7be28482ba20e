/**
 * Global set-up for the edge boot benchmark (test/browser/bench/v86-edge.test.ts), active only in
 * `npm run bench:browser` (VITE_STRATADISK_BENCH=1): an ext2 image made with `mke2fs -d` is
 * imported into a volume and published into a directory object store with the CLI (dist/), then
 * served two ways on loopback, each counting requests and body bytes:
 * - the edge handler (the same one as `stratadisk serve-edge`) at `/guest/latest`;
 * - the raw image file by a plain range server (src/bench/image-server.ts), for v86's own HTTP disk.
 * A control server answers `GET /counters` (JSON) and `GET /reset`, so the page reads the
 * servers' own counts.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startImageServer } from '../../../src/bench/image-server.js';
import { createEdgeHandler, type EdgeHandler } from '../../../src/edge/handler.js';
import { serveEdge } from '../../../src/edge/node-server.js';
import { createVersionCache } from '../../../src/edge/version-cache.js';
import { openObjectStore } from '../../../src/transfer/open-objects.js';
import { openPublishedVersion } from '../../../src/transfer/published-version.js';
import { loadKernels } from '../../../src/wasm/index.js';

const ROOT = join(import.meta.dirname, '../../..');
const CLI = join(ROOT, 'dist/cli/main.js');
export const EDGE_BOOT_IMAGE_MIB = 128;
/** the larger file the workload reads whole (md5sum) */
const BIG_FILE_BYTES = 8 * 2 ** 20;

export interface ServerCounters {
  /** GET/HEAD requests (preflights not counted) */
  requests: number;
  /** CORS preflights (OPTIONS) */
  preflights: number;
  /** response body bytes sent */
  bytes: number;
  /** the Range header of each GET ('' for none) */
  ranges: string[];
}

export interface EdgeBootServers {
  /** `${edge}/guest/latest` */
  edgeUrl: string;
  rawUrl: string;
  size: number;
  /** GET `${control}/counters` -> { edge, raw }: ServerCounters; GET `${control}/reset` zeroes them */
  control: string;
  hello: string;
  bigMd5: string;
  /** blocks of the published version and bytes stored in the packs */
  published: Record<string, unknown>;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** null outside `npm run bench:browser` */
    edgeBoot: EdgeBootServers | null;
  }
}

/** `inner` with its requests and body bytes counted into `c`. */
function counted(inner: EdgeHandler, c: ServerCounters): EdgeHandler {
  return async (request, ctx) => {
    if (request.method === 'OPTIONS') c.preflights++;
    else {
      c.requests++;
      c.ranges.push(request.headers.get('range') ?? '');
    }
    const res = await inner(request, ctx);
    if (!res.body || request.method === 'HEAD') return res;
    const body = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, out) {
          c.bytes += chunk.byteLength;
          out.enqueue(chunk);
        },
      }),
    );
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | void> {
  if (process.env.VITE_STRATADISK_BENCH !== '1') {
    project.provide('edgeBoot', null);
    return;
  }
  await mkdir(join(ROOT, 'test/.tmp'), { recursive: true });
  const work = await mkdtemp(join(ROOT, 'test/.tmp/edge-boot-'));
  const root = join(work, 'root');
  await mkdir(join(root, 'etc/app'), { recursive: true });
  const hello = 'from-the-edge\n';
  await writeFile(join(root, 'hello.txt'), hello);
  for (let i = 0; i < 16; i++) await writeFile(join(root, 'etc/app', `conf${i}.txt`), `setting-${i}=${'x'.repeat(200 + i * 97)}\n`);
  const big = randomBytes(BIG_FILE_BYTES);
  await writeFile(join(root, 'big.bin'), big);
  const img = join(work, 'disk.img');
  execFileSync('mke2fs', ['-q', '-t', 'ext2', '-F', '-i', '65536', '-d', root, img, `${EDGE_BOOT_IMAGE_MIB}M`]);
  const vol = join(work, 'disk');
  const published = join(work, 'published');
  execFileSync(process.execPath, [CLI, 'create', vol, '--size', `${EDGE_BOOT_IMAGE_MIB}M`]);
  execFileSync(process.execPath, [CLI, 'import', vol, img]);
  const report = JSON.parse(execFileSync(process.execPath, [CLI, 'publish', vol, '--to', published, '--name', 'guest', '--json']).toString()) as Record<string, unknown>;

  await loadKernels();
  const objects = await openObjectStore(published);
  const edgeCounters: ServerCounters = { requests: 0, preflights: 0, bytes: 0, ranges: [] };
  const handler = createEdgeHandler({
    open: createVersionCache({ open: (ref, s) => openPublishedVersion(objects, 'contentId' in ref ? { contentId: ref.contentId } : ref, s ? { signal: s } : {}) }),
    allowOrigin: '*',
  });
  const edge = await serveEdge(counted(handler, edgeCounters));
  const raw = await startImageServer(new Uint8Array(await readFile(img)));

  const control = createServer((req, res) => {
    const cors = { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin', 'Content-Type': 'application/json' };
    if (req.url === '/reset') {
      Object.assign(edgeCounters, { requests: 0, preflights: 0, bytes: 0, ranges: [] });
      raw.requests = 0;
      raw.preflights = 0;
      raw.bytes = 0;
      raw.log.length = 0;
    } else if (req.url !== '/counters') {
      res.writeHead(404, cors).end();
      return;
    }
    res.writeHead(200, cors).end(JSON.stringify({ edge: edgeCounters, raw: { requests: raw.requests, preflights: raw.preflights, bytes: raw.bytes, ranges: raw.log.map(([a, b]) => `bytes=${a}-${b}`) } }));
  });
  await new Promise<void>((r) => control.listen(0, '127.0.0.1', r));

  project.provide('edgeBoot', {
    edgeUrl: `${edge.url.replace(/\/$/, '')}/guest/latest`,
    rawUrl: raw.url,
    size: EDGE_BOOT_IMAGE_MIB * 2 ** 20,
    control: `http://127.0.0.1:${(control.address() as AddressInfo).port}`,
    hello,
    bigMd5: createHash('md5').update(big).digest('hex'),
    published: report,
  });
  return async () => {
    await edge.close().catch(() => {});
    await raw.close().catch(() => {});
    control.closeAllConnections();
    await new Promise<void>((r) => control.close(() => r()));
    await objects.close?.();
    await rm(work, { recursive: true, force: true });
  };
}
