/**
 * Benchmarks of the WebAssembly kernels against peers measured in the same run: hash-wasm and
 * xxhash-wasm for checksums, hash-wasm and Debian's native b3sum for BLAKE3,
 * TypedArray.prototype.set for copies, plain TypeScript loops for zero detection and layer
 * resolution.
 */
import { median, pairedResult, result, rate, runPairedRounds, type BenchResult } from './result.js';
import { blake3, blake3Chunks, copyRuns, hashSegments128, hashSegments64, isZero, loadKernels, resolve, SparseBitmap, WasmBuffer, xxh64 } from '../wasm/index.js';

const KiB = 1024;
const MiB = 1024 * 1024;

/** Deterministic filler (xorshift32) so runs are comparable. */
function fill(d: Uint8Array, seed = 0x9e3779b9): void {
  let x = seed >>> 0;
  const w = new Uint32Array(d.buffer, d.byteOffset, d.length >>> 2);
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    w[i] = x >>> 0;
  }
}

/**
 * Measures `ours` and `peer` alternately (after a warm-up long enough for V8 to tier both up to
 * optimised code) and keeps the best of five rounds of each, so neither side is penalised by
 * running first or by a noisy moment. Returns calls per second for each.
 */
async function pair(ours: () => unknown, peer: () => unknown, ms: number): Promise<[number, number]> {
  await rate(ours, ms / 2);
  await rate(peer, ms / 2);
  let a = 0, b = 0;
  for (let round = 0; round < 5; round++) {
    a = Math.max(a, await rate(ours, ms / 4));
    b = Math.max(b, await rate(peer, ms / 4));
  }
  return [a, b];
}

export async function benchKernels(options: { quick?: boolean } = {}): Promise<BenchResult[]> {
  await loadKernels();
  const quick = options.quick === true;
  const ms = quick ? 40 : 400;
  const out: BenchResult[] = [];
  const gbs = (callsPerSec: number, bytes: number): number => (callsPerSec * bytes) / 1e9;

  // --- checksums over 64 KiB segments -------------------------------------------------------
  const SEG = 64 * KiB;
  const data = new Uint8Array(quick ? 2 * MiB : 16 * MiB);
  fill(data);
  const nseg = data.length / SEG;
  const hashwasm = await import('hash-wasm');
  const xxhashwasm = (await import('xxhash-wasm')).default;
  const { h64Raw } = await xxhashwasm();

  const out64 = new BigUint64Array(nseg);
  const h3 = await hashwasm.createXXHash3();
  const [ours64, peer64] = await pair(() => hashSegments64(data, SEG, out64), () => {
    for (let o = 0; o < data.length; o += SEG) { h3.init(); h3.update(data.subarray(o, o + SEG)); h3.digest('binary'); }
  }, ms);
  out.push(result('xxh3-64, 64 KiB segments', gbs(ours64, data.length), gbs(peer64, data.length), 'GB/s', 'hash-wasm createXXHash3', 1.5, 'hashSegments64: one kernel call per batch, input staged from JS memory'));

  const out128 = new Uint8Array(nseg * 16);
  const h128 = await hashwasm.createXXHash128();
  const [ours128, peer128] = await pair(() => hashSegments128(data, SEG, out128), () => {
    for (let o = 0; o < data.length; o += SEG) { h128.init(); h128.update(data.subarray(o, o + SEG)); h128.digest('binary'); }
  }, ms);
  out.push(result('xxh3-128, 64 KiB segments', gbs(ours128, data.length), gbs(peer128, data.length), 'GB/s', 'hash-wasm createXXHash128', 1.5, 'hashSegments128'));

  // Same, with the data already in WASM memory (no staging copy): what a WasmBuffer-based caller gets.
  const wdata = new WasmBuffer(data.length);
  wdata.view.set(data);
  const view = wdata.view; // no allocation or growth happens while this view is in use
  const [oursInPlace] = await pair(() => hashSegments64(view, SEG, out64), () => 0, ms);
  out.push(result('xxh3-64, 64 KiB segments in a WasmBuffer', gbs(oursInPlace, data.length), gbs(peer64, data.length), 'GB/s', 'hash-wasm createXXHash3', undefined, 'informative: input already in WASM memory'));
  wdata.dispose();

  const [oursX64, peerX64] = await pair(
    () => { for (let o = 0; o < data.length; o += SEG) xxh64(data.subarray(o, o + SEG)); },
    () => { for (let o = 0; o < data.length; o += SEG) h64Raw(data.subarray(o, o + SEG)); }, ms);
  out.push(result('xxh64, 64 KiB inputs', gbs(oursX64, data.length), gbs(peerX64, data.length), 'GB/s', 'xxhash-wasm h64Raw', undefined, 'one call per 64 KiB input on both sides'));
  out.push(result('xxh3-64 vs xxh64, 64 KiB segments', gbs(ours64, data.length), gbs(peerX64, data.length), 'GB/s', 'xxhash-wasm h64Raw', undefined, 'informative: different algorithms'));

  out.push(...(await benchBlake3(quick, ms)));

  // --- copyRuns vs TypedArray.set ---------------------------------------------------------
  const RUN = 64 * KiB;
  const span = quick ? 4 * MiB : 16 * MiB;
  const nruns = span / RUN;
  const runs = new Uint32Array(nruns * 3);
  for (let i = 0; i < nruns; i++) {
    runs[3 * i] = ((i * 7) % nruns) * RUN; // scattered destinations
    runs[3 * i + 1] = i * RUN;
    runs[3 * i + 2] = RUN;
  }
  const wsrc = new WasmBuffer(span), wdst = new WasmBuffer(span);
  fill(wsrc.view);
  const jsrc = new Uint8Array(span), jdst = new Uint8Array(span);
  fill(jsrc);
  const [oursCopy, peerCopy] = await pair(() => copyRuns(wdst, wsrc, runs), () => {
    for (let i = 0; i < runs.length; i += 3) jdst.set(jsrc.subarray(runs[i + 1]!, runs[i + 1]! + runs[i + 2]!), runs[i]!);
  }, ms);
  out.push(result('copyRuns, 64 KiB runs', gbs(oursCopy, span), gbs(peerCopy, span), 'GB/s', 'TypedArray.prototype.set', 0.9, `${nruns} runs per call, WasmBuffer to WasmBuffer`));
  wsrc.dispose(); wdst.dispose();

  // --- zero detection vs TS loops -----------------------------------------------------------
  const zeros = new Uint8Array(quick ? 2 * MiB : 16 * MiB);
  zeros.fill(1).fill(0); // touch every page: untouched pages all map the kernel's one zero page
  const words = new Uint32Array(zeros.buffer);
  const [oursZero, peerZeroBytes] = await pair(() => isZero(zeros), () => { for (let i = 0; i < zeros.length; i++) if (zeros[i] !== 0) return false; return true; }, ms);
  const [, peerZeroWords] = await pair(() => 0, () => { for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false; return true; }, ms);
  out.push(result('zero detection (JS memory)', gbs(oursZero, zeros.length), gbs(peerZeroBytes, zeros.length), 'GB/s', 'TypeScript byte loop', undefined, 'isZero stages 256 KiB chunks into WASM memory'));
  out.push(result('zero detection (JS memory) vs word loop', gbs(oursZero, zeros.length), gbs(peerZeroWords, zeros.length), 'GB/s', 'TypeScript Uint32Array loop'));
  const wz = new WasmBuffer(zeros.length);
  const wzView = wz.view;
  const [oursZeroInPlace] = await pair(() => isZero(wzView), () => 0, ms);
  out.push(result('zero detection (WasmBuffer)', gbs(oursZeroInPlace, zeros.length), gbs(peerZeroWords, zeros.length), 'GB/s', 'TypeScript Uint32Array loop', undefined, 'informative: input already in WASM memory'));
  wz.dispose();

  // --- resolve: 16M blocks x 4 layers vs a TS loop over plain Uint32Array pages -------------
  const BLOCKS = quick ? 1 << 20 : 16 << 20;
  const LAYERS = 4;
  const PAGE = 1 << 16;
  const layers: SparseBitmap[] = [];
  const plain: Map<number, Uint32Array>[] = [];
  let x = 12345;
  const rnd = (n: number): number => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) % n; };
  for (let l = 0; l < LAYERS; l++) {
    const bm = new SparseBitmap();
    const pages = new Map<number, Uint32Array>();
    const setPlain = (s: number, n: number): void => {
      for (let b = s; b < s + n; b++) {
        let p = pages.get(b >>> 16);
        if (!p) { p = new Uint32Array(PAGE / 32); pages.set(b >>> 16, p); }
        p[(b & 0xFFFF) >>> 5]! |= 1 << (b & 31);
      }
    };
    // Bottom layer (3) holds everything; higher layers hold progressively fewer and shorter runs.
    const density = [0.02, 0.1, 0.4, 1][l]!;
    const runLen = [4, 16, 256, BLOCKS][l]!;
    if (l === LAYERS - 1) { bm.set(0, BLOCKS); setPlain(0, BLOCKS); }
    else {
      const nr = Math.floor((BLOCKS * density) / runLen);
      for (let r = 0; r < nr; r++) {
        const s = rnd(BLOCKS - runLen), n = 1 + rnd(runLen * 2 - 1);
        const m = Math.min(n, BLOCKS - s);
        bm.set(s, m); setPlain(s, m);
      }
    }
    layers.push(bm);
    plain.push(pages);
  }
  const owners = new Uint16Array(BLOCKS);
  const peerOwners = new Uint16Array(BLOCKS);
  const empty = new Uint32Array(PAGE / 32);
  const [oursResolve, peerResolve] = await pair(() => resolve(layers, 0, BLOCKS, owners), () => {
    for (let base = 0; base < BLOCKS; base += PAGE) {
      const pages = plain.map((m) => m.get(base >>> 16) ?? empty);
      const end = Math.min(base + PAGE, BLOCKS);
      for (let b = base; b < end; b++) {
        let owner = 0xFFFF;
        const w = (b & 0xFFFF) >>> 5, bit = b & 31;
        for (let l = 0; l < LAYERS; l++) {
          if ((pages[l]![w]! >>> bit) & 1) { owner = l; break; }
        }
        peerOwners[b] = owner;
      }
    }
  }, ms);
  for (let i = 0; i < BLOCKS; i += 997) {
    if (owners[i] !== peerOwners[i]) throw new Error(`resolve benchmark: owners differ at block ${i}`);
  }
  out.push(result(`resolve, ${BLOCKS >>> 20}M blocks x ${LAYERS} layers`, oursResolve * BLOCKS, peerResolve * BLOCKS, 'blocks/s', 'TypeScript loop over Uint32Array pages', 10, 'one kernel call per 65536-block page span'));
  for (const l of layers) l.dispose();

  return out;
}

/** User+system CPU seconds of this process, where the runtime tells (Node); undefined in browsers. */
const cpuNow: (() => number) | undefined = typeof process !== 'undefined' && typeof process.cpuUsage === 'function'
  ? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; }
  : undefined;

/** Runs `fn` (over `bytes` bytes) for about `ms` after one warm-up call: [GB/s, CPU s per GiB or NaN]. */
async function measure(fn: () => unknown, bytes: number, ms: number): Promise<[number, number]> {
  await fn();
  const c0 = cpuNow?.() ?? Number.NaN;
  const t0 = performance.now();
  let n = 0, t = t0;
  while (t - t0 < ms) {
    await fn();
    n++;
    t = performance.now();
  }
  const c = (cpuNow?.() ?? Number.NaN) - c0;
  return [(n * bytes) / ((t - t0) / 1000) / 1e9, c / ((n * bytes) / 2 ** 30)];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const roundTo = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * BLAKE3 over 64 KiB chunks (the names of published chunks): blake3Chunks vs hash-wasm's
 * blake3 (one init/update/digest per chunk) in paired rounds, and, under Node, vs Debian's
 * native b3sum on a tmpfs file (one thread and its default of one thread per core).
 */
async function benchBlake3(quick: boolean, ms: number): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const SEG = 64 * KiB;
  const data = new Uint8Array(quick ? 4 * MiB : 64 * MiB);
  fill(data, 0xb1a4e3);
  const nseg = data.length / SEG;
  const ours = new Uint8Array(nseg * 32), theirs = new Uint8Array(nseg * 32);
  const peer = await (await import('hash-wasm')).createBLAKE3();
  const oursAll = (): unknown => blake3Chunks(data, SEG, ours);
  const peerAll = (): void => {
    for (let i = 0; i < nseg; i++) {
      peer.init();
      peer.update(data.subarray(i * SEG, (i + 1) * SEG));
      theirs.set(peer.digest('binary'), i * 32);
    }
  };
  oursAll();
  peerAll();
  if (!sameBytes(ours, theirs)) throw new Error('blake3 benchmark: blake3Chunks differs from hash-wasm');

  const rounds = quick ? 2 : 7;
  const wdata = new WasmBuffer(data.length);
  wdata.view.set(data);
  const view = wdata.view; // nothing allocates while this view is in use
  const figures = await runPairedRounds([
    () => measure(oursAll, data.length, ms / 2),
    () => measure(peerAll, data.length, ms / 2),
    () => measure(() => blake3Chunks(view, SEG, ours), data.length, ms / 2),
  ], rounds);
  wdata.dispose();
  const gbs = (k: number): number[] => figures[k]!.map((f) => f[0]);
  const cpu = (k: number): number | undefined => {
    const c = median(figures[k]!.map((f) => f[1]));
    return Number.isFinite(c) ? roundTo(c, 3) : undefined;
  };
  const withCpu = (r: BenchResult, a: number, b: number): BenchResult => {
    const oc = cpu(a), pc = cpu(b);
    return oc === undefined || pc === undefined ? r : { ...r, oursCpuPerGiB: oc, peerCpuPerGiB: pc };
  };
  const size = `${data.length / MiB} MiB in ${nseg} chunks of 64 KiB`;
  out.push(withCpu(pairedResult('blake3, 64 KiB chunks', gbs(0), gbs(1), 'GB/s', 'hash-wasm createBLAKE3 (init/update/digest per chunk)', 1.5,
    `blake3Chunks, input in JS memory (staged through WASM scratch); ${size}; ${rounds} paired rounds, medians`), 0, 1));
  out.push(withCpu(pairedResult('blake3, 64 KiB chunks in a WasmBuffer', gbs(2), gbs(1), 'GB/s', 'hash-wasm createBLAKE3 (init/update/digest per chunk)', undefined,
    'informative: input already in WASM memory'), 2, 1));

  if (cpuNow !== undefined) out.push(...(await benchB3sum(data, oursAll, quick)));
  return out;
}

/** Node only: ours (blake3Chunks, one thread) vs b3sum over the same bytes in a tmpfs file. */
async function benchB3sum(data: Uint8Array, oursAll: () => unknown, quick: boolean): Promise<BenchResult[]> {
  // Variable specifiers, hidden from bundlers: these modules use node: built-ins.
  const b3sumModule = './b3sum.js', cpuModule = './cpu.js';
  const { B3sumPeer } = (await import(/* @vite-ignore */ b3sumModule)) as typeof import('./b3sum.js');
  const { load1 } = (await import(/* @vite-ignore */ cpuModule)) as typeof import('./cpu.js');
  const copies = 4;
  const peer = await B3sumPeer.create(data, copies);
  if (peer === undefined) return [];
  try {
    // b3sum hashes the file as one BLAKE3 input: check it agrees with ours on the same bytes.
    const all = new Uint8Array(peer.bytes);
    for (let i = 0; i < copies; i++) all.set(data, i * data.length);
    const mine = Array.from(blake3(all), (b) => b.toString(16).padStart(2, '0')).join('');
    if (mine !== await peer.hash()) throw new Error('blake3 benchmark: b3sum and blake3() disagree on the same bytes');

    const oursTimed = async (): Promise<[number, number]> => {
      const c0 = cpuNow!();
      const t0 = performance.now();
      for (let i = 0; i < copies; i++) oursAll();
      const s = (performance.now() - t0) / 1000;
      return [peer.bytes / s / 1e9, cpuNow!() - c0];
    };
    const b3 = (threads?: number) => async (): Promise<[number, number]> => {
      const r = await peer.time(threads);
      return [r.gbs, r.cpuSeconds];
    };
    await oursTimed(); // warm-up
    await b3(1)();
    const rounds = quick ? 1 : 7;
    const loadStart = load1();
    const figures = await runPairedRounds([oursTimed, b3(1), b3()], rounds);
    const load: [number, number] = [loadStart, load1()];
    const GiB = peer.bytes / 2 ** 30;
    const gbs = (k: number): number[] => figures[k]!.map((f) => f[0]);
    const cpu = (k: number): number => roundTo(median(figures[k]!.map((f) => f[1])) / GiB, 3);
    const note = `${peer.bytes / MiB} MiB per measurement: ours blake3Chunks over 64 KiB chunks (${copies} x ${data.length / MiB} MiB in JS memory, one thread); ${peer.version} hashes the same bytes as one input from a tmpfs file (native SIMD, AVX-512 where present), timed by bash \`time\` (process start included); ${rounds} paired rounds, medians; load ${load[0]}->${load[1]}`;
    const row = (name: string, k: number, peerName: string): BenchResult => ({
      ...pairedResult(name, gbs(0), gbs(k), 'GB/s', peerName, undefined, note),
      oursCpuPerGiB: cpu(0),
      peerCpuPerGiB: cpu(k),
      load,
    });
    return [
      row('blake3, 64 KiB chunks vs native b3sum, 1 thread', 1, 'b3sum --num-threads 1 (Debian, native)'),
      row('blake3, 64 KiB chunks vs native b3sum, default threads', 2, 'b3sum (Debian, native, one thread per core)'),
    ];
  } finally {
    await peer.close();
  }
}
