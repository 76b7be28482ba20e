/**
 * Edge range serving in workerd (miniflare, its R2 emulation on this machine): a published image
 * served by the edge worker (stratadisk/edge: tag → version → segment → chunk lookups, coalesced
 * pack range reads, BLAKE3 of every chunk, bounded pieces) against the least a worker can do:
 * pass the Range header to R2 for the same image stored as one raw object and stream R2's body.
 * Same workerd process, same bucket, same client (Node, through miniflare's dispatch), requests
 * `concurrency` at a time. Two patterns: random 64 KiB reads (block-aligned offsets) and
 * sequential 4 MiB reads. The edge worker's Cache API is off: every request reads R2.
 * Paired rounds (each side right after the other, order alternating), median ratio and range.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { MemoryNamespace } from '../store/memory.js';
import { MemoryObjectStore } from '../transfer/memory-objects.js';
import { publish } from '../transfer/publish.js';
import { Volume } from '../volume/volume.js';
import { loadKernels } from '../wasm/index.js';
import { load1 } from './cpu.js';
import { siblingEntry, startWorkerd, type Workerd } from './edge-workerd.js';
import { prng } from './prng.js';
import { median, pairedResult, runPairedRounds, type BenchResult } from './result.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;

export interface EdgeBenchOptions {
  quick?: boolean;
  /** image size (default 128 MiB; quick 32 MiB) */
  size?: number;
  rounds?: number;
  /** ms per side per round */
  ms?: number;
  concurrency?: number;
}

export async function benchEdge(opts: EdgeBenchOptions = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const size = opts.size ?? (quick ? 32 * MiB : 128 * MiB);
  const rounds = opts.rounds ?? (quick ? 1 : 5);
  const ms = opts.ms ?? (quick ? 400 : 2000);
  const concurrency = opts.concurrency ?? 4;
  await loadKernels();

  // The image: seeded incompressible bytes in every block (the peer stores them all too).
  const image = new Uint8Array(size);
  const words = new Uint32Array(image.buffer);
  const rnd = prng(4242);
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(rnd() * 2 ** 32);
  const vol = await Volume.create(new MemoryNamespace(), { size, blockSize: BLOCK });
  for (let o = 0; o < size; o += 4 * MiB) await vol.write(o, image.subarray(o, Math.min(size, o + 4 * MiB)));
  const objects = new MemoryObjectStore();
  const published = await publish(objects, vol, { image: 'disk' });
  await vol.close();

  const w = await startWorkerd([
    { name: 'edge', entry: siblingEntry(import.meta.url, '../edge/workerd'), vars: { EDGE_CACHE: 'off' } },
    { name: 'raw', entry: siblingEntry(import.meta.url, 'edge-raw-worker') },
  ]);
  try {
    const bucket = await w.bucket();
    for (const [key, o] of objects.objects) await bucket.put(key, o.data);
    await bucket.put('raw.img', image);
    const ours = `http://edge.bench/disk/@${published.contentId}`;
    const peer = 'http://edge.bench/raw.img';
    // both sides answer the same bytes (checked once, outside the timed part)
    for (const [worker, url] of [['edge', ours], ['raw', peer]] as const) {
      const r = await w.fetch(worker, url, { headers: { Range: `bytes=${5 * BLOCK}-${9 * BLOCK - 1}` } });
      const got = new Uint8Array(await r.arrayBuffer());
      if (r.status !== 206 || Buffer.compare(got, image.subarray(5 * BLOCK, 9 * BLOCK)) !== 0) throw new Error(`bench edge: the ${worker} worker answered ${r.status} with other bytes`);
    }
    const out: BenchResult[] = [];
    const loadBefore = load1();
    for (const pattern of ['random 64 KiB', 'sequential 4 MiB'] as const) {
      const len = pattern === 'random 64 KiB' ? 64 * KiB : 4 * MiB;
      const offsets = pattern === 'random 64 KiB' ? randomOffsets(size, len, 7) : sequentialOffsets(size, len);
      const side = (worker: string, url: string) => () => measure(w, worker, url, offsets, len, concurrency, ms);
      const [oRuns, pRuns] = await runPairedRounds([side('edge', ours), side('raw', peer)], rounds);
      const o = oRuns!.map((x) => x.perSecond);
      const p = pRuns!.map((x) => x.perSecond);
      const unit = pattern === 'random 64 KiB' ? 'req/s' : 'MB/s';
      const scale = pattern === 'random 64 KiB' ? 1 : len / 1e6;
      const r = pairedResult(
        `edge worker: ${pattern} range reads of a published ${size / MiB} MiB image (workerd + R2 emulation)`,
        o.map((x) => x * scale),
        p.map((x) => x * scale),
        unit,
        'a minimal worker serving the same image as one raw R2 object (Range passed to R2.get)',
        0.8,
        `${concurrency} requests in flight; every chunk BLAKE3-verified; Cache API off; 64 KiB blocks, incompressible data; client: Node through miniflare's dispatch (same for both)`,
      );
      r.load = [loadBefore, load1()];
      // CPU of the workerd process per GiB served: independent of the machine's other load
      const oc = oRuns!.map((x) => x.cpuPerGiB).filter((x) => Number.isFinite(x));
      const pc = pRuns!.map((x) => x.cpuPerGiB).filter((x) => Number.isFinite(x));
      if (oc.length > 0 && pc.length > 0) {
        r.oursCpuPerGiB = Math.round(median(oc) * 100) / 100;
        r.peerCpuPerGiB = Math.round(median(pc) * 100) / 100;
      }
      out.push(r);
    }
    return out;
  } finally {
    await w.dispose();
  }
}

function randomOffsets(size: number, len: number, seed: number): number[] {
  const r = prng(seed);
  const n = Math.floor((size - len) / BLOCK) + 1;
  return Array.from({ length: 4096 }, () => Math.floor(r() * n) * BLOCK);
}

function sequentialOffsets(size: number, len: number): number[] {
  return Array.from({ length: Math.floor(size / len) }, (_, i) => i * len);
}

/** Requests per second over about `ms`, `concurrency` in flight, each body read to its end; and workerd's CPU seconds per GiB. */
async function measure(w: Workerd, worker: string, url: string, offsets: readonly number[], len: number, concurrency: number, ms: number): Promise<{ perSecond: number; cpuPerGiB: number }> {
  let next = 0;
  let done = 0;
  const cpu0 = workerdCpuSeconds();
  const t0 = performance.now();
  const until = t0 + ms;
  const lane = async () => {
    while (performance.now() < until) {
      const o = offsets[next++ % offsets.length]!;
      const r = await w.fetch(worker, url, { headers: { Range: `bytes=${o}-${o + len - 1}` } });
      const n = (await r.arrayBuffer()).byteLength;
      if (r.status !== 206 || n !== len) throw new Error(`bench edge: ${worker} answered ${r.status} with ${n} bytes for ${len}`);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const elapsed = performance.now() - t0;
  const cpu = workerdCpuSeconds() - cpu0;
  return { perSecond: (done * 1000) / elapsed, cpuPerGiB: done > 0 ? cpu / ((done * len) / 2 ** 30) : Number.NaN };
}

/** user+system CPU seconds of the workerd processes this process started (Linux /proc; NaN elsewhere). */
function workerdCpuSeconds(): number {
  try {
    let total = 0;
    let found = false;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        continue;
      }
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // after "pid (comm) ": ppid is field 4 (index 1 here), utime 14 and stime 15 (11 and 12)
      if (comm !== 'workerd' || Number(f[1]) !== process.pid) continue;
      total += (Number(f[11]) + Number(f[12])) / 100;
      found = true;
    }
    return found ? total : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
