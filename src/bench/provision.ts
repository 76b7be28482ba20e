/**
 * Provisioning a volume from an image server: a boot-like read pattern (many small reads, most
 * in sequential runs, some re-reads) replayed against a local HTTP server, by
 * - ours: a copy-on-read volume (`Volume.createFromImage`, 64 KiB blocks, adaptive read-ahead,
 *   fetched blocks kept in a cache layer on a Node directory);
 * - naive: one range request per guest read, exactly that read's bytes (no cache), as naive
 *   emulator disks do;
 * - block cache: one request per missing 64 KiB block, blocks kept in memory (a block cache
 *   without coalescing or read-ahead).
 * All three count requests and body bytes at the server, in the same run. The server answers
 * after `delayMs` (a stand-in for network latency: on loopback a request costs nothing and
 * counts would not show in times). Time to first byte: from the start (ours: opening the volume,
 * created beforehand with nothing fetched; also reported: creating it, which pins the image with
 * one request, then the first read) to the first read's data.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { loadKernels } from '../wasm/index.js';
import { startImageServer } from './image-server.js';
import { prng } from './prng.js';
import { result, type BenchResult } from './result.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;

/** A boot-like trace: [offset, length] reads. */
export function bootPattern(imageSize: number, reads: number, seed = 7): [number, number][] {
  const rnd = prng(seed);
  const out: [number, number][] = [];
  const visited: number[] = [];
  while (out.length < reads) {
    // A run starts somewhere new (70%) or revisits an earlier place (30%: config files, libraries).
    let at = visited.length > 0 && rnd() < 0.3 ? visited[Math.floor(rnd() * visited.length)]! : Math.floor((rnd() * imageSize) / 4096) * 4096;
    visited.push(at);
    const run = 4 + Math.floor(rnd() * 60);
    for (let i = 0; i < run && out.length < reads; i++) {
      const r = rnd();
      const len = r < 0.6 ? 4096 : r < 0.8 ? 512 * (1 + Math.floor(rnd() * 8)) : r < 0.95 ? 16 * KiB : 128 * KiB;
      if (at + len > imageSize) break;
      out.push([at, len]);
      at += len;
    }
  }
  return out;
}

interface Replay {
  requests: number;
  bytes: number;
  ttfbMs: number;
  totalMs: number;
}

export async function benchProvision(opts: { quick?: boolean; reads?: number; imageSize?: number } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const imageSize = opts.imageSize ?? (quick ? 32 * MiB : 256 * MiB);
  const reads = opts.reads ?? (quick ? 1500 : 6000);
  const delayMs = 2;
  const image = new Uint8Array(imageSize);
  const rnd = prng(3);
  for (let i = 0; i < imageSize; i += 4) {
    // mostly data, some zero regions (a sparse filesystem image)
    if ((i >> 20) % 7 === 3) continue;
    const x = (rnd() * 2 ** 32) >>> 0;
    image[i] = x;
    image[i + 1] = x >>> 8;
    image[i + 2] = x >>> 16;
    image[i + 3] = x >>> 24;
  }
  const trace = bootPattern(imageSize, reads);
  const traceBytes = trace.reduce((n, [, l]) => n + l, 0);
  const server = await startImageServer(image, { delayMs });
  const dir = mkdtempSync(join(tmpdir(), 'stratadisk-bench-provision-'));
  const buf = new Uint8Array(128 * KiB);
  try {
    // Warm up what every contender shares (fetch's first use loads its HTTP client; the kernels compile once).
    await loadKernels();
    await (await fetch(server.url, { headers: { Range: 'bytes=0-0' } })).arrayBuffer();
    const counted = async (fn: () => Promise<number>): Promise<Replay> => {
      const r0 = server.requests;
      const b0 = server.bytes;
      const t0 = performance.now();
      const ttfb = await fn();
      return { requests: server.requests - r0, bytes: server.bytes - b0, ttfbMs: ttfb - t0, totalMs: performance.now() - t0 };
    };
    const t0 = performance.now();
    const created = await Volume.createFromImage(new NodeDirNamespace(join(dir, 'first'), { create: true }), server.url, { blockSize: BLOCK });
    await created.readInto(trace[0]![0], buf.subarray(0, trace[0]![1]));
    const ttfbCreate = performance.now() - t0;
    await created.close();
    await (await Volume.createFromImage(new NodeDirNamespace(join(dir, 'vol'), { create: true }), server.url, { blockSize: BLOCK })).close();
    const ours = await counted(async () => {
      const v = await Volume.open(new NodeDirNamespace(join(dir, 'vol')));
      let first = 0;
      for (const [off, len] of trace) {
        await v.readInto(off, buf.subarray(0, len));
        first ||= performance.now();
      }
      await v.close();
      return first;
    });
    const naive = await counted(async () => {
      let first = 0;
      for (const [off, len] of trace) {
        const res = await fetch(server.url, { headers: { Range: `bytes=${off}-${off + len - 1}` } });
        buf.set(new Uint8Array(await res.arrayBuffer()));
        first ||= performance.now();
      }
      return first;
    });
    const blockCache = await counted(async () => {
      const cache = new Map<number, Uint8Array>();
      let first = 0;
      for (const [off, len] of trace) {
        for (let b = Math.floor(off / BLOCK); b * BLOCK < off + len; b++) {
          if (cache.has(b)) continue;
          const end = Math.min(imageSize, (b + 1) * BLOCK) - 1;
          const res = await fetch(server.url, { headers: { Range: `bytes=${b * BLOCK}-${end}` } });
          cache.set(b, new Uint8Array(await res.arrayBuffer()));
        }
        first ||= performance.now();
      }
      return first;
    });
    const shape = `${trace.length} reads, ${(traceBytes / MiB).toFixed(1)} MiB read from a ${imageSize / MiB} MiB image; server answers after ${delayMs} ms`;
    const lower = 'lower is better (ratio = ours / peer)';
    return [
      result('provision: HTTP requests, boot-like reads', ours.requests, naive.requests, 'requests', 'one request per read (naive emulator disk)', undefined, `${lower}; ${shape}`),
      result('provision: HTTP requests vs a 64K block cache', ours.requests, blockCache.requests, 'requests', 'one request per missing 64 KiB block, cached', undefined, lower),
      result('provision: bytes fetched', ours.bytes / MiB, naive.bytes / MiB, 'MiB', 'one request per read (naive emulator disk)', undefined, `${lower}; ours fetches whole 64 KiB blocks and reads ahead, and keeps them: re-reads and later reads cost nothing`),
      result('provision: bytes fetched vs a 64K block cache', ours.bytes / MiB, blockCache.bytes / MiB, 'MiB', 'one request per missing 64 KiB block, cached', undefined, lower),
      result('provision: time to first byte', ours.ttfbMs, naive.ttfbMs, 'ms', 'one request per read (naive emulator disk)', undefined, `${lower}; ours = opening the volume (created earlier, nothing fetched) + the first read`),
      result('provision: time to first byte, creating the volume', ttfbCreate, naive.ttfbMs, 'ms', 'one request per read (naive emulator disk)', undefined, `${lower}; creating = one request to pin the image + two layers and a manifest written and synced`),
      result('provision: time to replay the trace', ours.totalMs, naive.totalMs, 'ms', 'one request per read (naive emulator disk)', undefined, `${lower}; block cache peer: ${blockCache.totalMs.toFixed(0)} ms`),
    ];
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
