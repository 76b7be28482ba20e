/**
 * Volume I/O benchmarks against real peers, measured in the same run:
 *
 * - `chain`: random 4 KiB reads and writes through a 4-layer chain on the Node file store vs
 *   `qemu-img bench` on a qcow2 chain of the same shape holding the same bytes.
 * - `sequential`: reading a whole single-layer volume in 1 MiB / 4 MiB chunks vs positional
 *   reads of a raw file holding the same bytes.
 *
 * Everything is built in a fresh directory under os.tmpdir() and removed afterwards. Both sides
 * read from the page cache (the data was just written): these are CPU/software-path figures,
 * not device figures.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { accessSync, closeSync, constants, openSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NodeDirNamespace } from '../store/node-dir.js';
import { NodeFileStore } from '../store/node-file.js';
import { Volume } from '../volume/volume.js';
import { load1, ownCpuSeconds } from './cpu.js';
import { median, pairedResult, result, type BenchResult } from './result.js';
import { prng } from './prng.js';

const run = promisify(execFile);

const KiB = 1024;
const MiB = 1024 * KiB;
/** 64 KiB blocks: stratadisk's default block size and qcow2's default cluster size, so both sides allocate and copy up the same unit. */
const BLOCK = 64 * KiB;
const IO = 4 * KiB;

export interface VolumeBenchOptions {
  quick?: boolean;
  onResult?: (r: BenchResult) => void;
  /** keep the temp directory (for debugging); default false */
  keep?: boolean;
}

/** Seeded xorshift32 in [0, 1). */

/** Is a usable qemu-img (with `bench`) on the PATH? Returns its version line, or null. */
export async function qemuImgVersion(): Promise<string | null> {
  try {
    const { stdout } = await run('qemu-img', ['--version']);
    return stdout.split('\n')[0]!.trim();
  } catch {
    return null;
  }
}

interface QemuBench {
  seconds: number;
  opsPerSec: number;
}

/** Runs `qemu-img bench` and parses "Run completed in X seconds". */
async function qemuBench(image: string, args: { count: number; depth: number; step: number; write: boolean; aio: string; io?: number }): Promise<QemuBench> {
  const argv = ['bench', '-f', 'qcow2', '-t', 'writeback', '-i', args.aio, '-c', String(args.count), '-d', String(args.depth), '-s', String(args.io ?? IO), '-S', String(args.step), '-o', '0'];
  if (args.write) argv.push('-w', '--pattern=171');
  argv.push(image);
  const { stdout } = await run('qemu-img', argv, { maxBuffer: 1 << 20 });
  const m = /Run completed in ([0-9.]+) seconds/.exec(stdout);
  if (!m) throw new Error(`qemu-img bench printed no timing: ${stdout}`);
  const seconds = Number(m[1]);
  return { seconds, opsPerSec: args.count / seconds };
}

/**
 * Ours: `count` requests of `io` bytes (default 4 KiB) at offsets (i * step) mod size — exactly
 * qemu-img bench's sequence for `-o 0 -S step` — with `depth` requests in flight (each completion
 * starts the next one, as qemu-img bench does). With `writeShare`, request i is a write when a
 * seeded generator draws below it and a read otherwise (a mixed load); else all are `write`.
 */
async function oursBench(vol: Volume, args: { count: number; depth: number; step: number; write: boolean; io?: number; writeShare?: number }): Promise<number> {
  const size = vol.size;
  const io = args.io ?? IO;
  let next = 0;
  let offset = 0;
  const pattern = new Uint8Array(io).fill(171);
  const draw = prng(0x5eed);
  const isWrite = args.writeShare === undefined ? () => args.write : () => draw() < args.writeShare!;
  const worker = async (): Promise<void> => {
    const buf = new Uint8Array(io);
    while (next < args.count) {
      next++;
      const at = offset;
      offset = (offset + args.step) % size;
      if (isWrite()) await vol.write(at, pattern);
      else await vol.readInto(at, buf);
    }
  };
  const t0 = performance.now();
  const workers: Promise<void>[] = [];
  for (let d = 0; d < args.depth; d++) workers.push(worker());
  await Promise.all(workers);
  return (args.count * 1000) / (performance.now() - t0);
}

/** A stride in `unit`s (default 4 KiB) that is odd (so it visits every unit of a power-of-two size before repeating) and far from sequential. */
function strideFor(size: number, unit = IO): number {
  const pages = size / unit;
  // about 0.381966 (1 - 1/golden ratio) of the image: consecutive requests land in distant clusters
  let p = Math.floor(pages * 0.381966);
  if (p % 2 === 0) p++;
  return p * unit;
}

/** A fresh, empty qcow2 overlay `img` (64 KiB clusters) on `backing`, replacing any earlier one. */
async function newOverlay(backing: string, img: string): Promise<void> {
  await rm(img, { force: true });
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${BLOCK}`, '-b', backing, '-F', 'qcow2', img]);
}

// ------------------------------------------------------------------------------------------
// chain: random 4 KiB through a 4-layer chain vs qemu-img bench on a qcow2 chain

export async function benchChain(opts: VolumeBenchOptions = {}): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const emit = (r: BenchResult): void => {
    out.push(r);
    opts.onResult?.(r);
  };
  const quick = opts.quick === true;
  const qemu = await qemuImgVersion();
  if (!qemu) {
    // No peer, no result: a figure without its peer would break the "side by side" rule.
    process.emitWarning('qemu-img not found: skipping the chain benchmarks (install qemu-utils: bash .ci/setup-system.sh)');
    return out;
  }
  const size = quick ? 64 * MiB : 1024 * MiB;
  const readCount = quick ? 4000 : 200_000;
  const writeCount = quick ? 1000 : 30_000;
  const rounds = quick ? 1 : 3;
  const fractions = [0.1, 0.18, 0.25];
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-chain-'));
  try {
    const setup0 = performance.now();
    const rawPath = join(dir, 'state.raw');
    const ns = new NodeDirNamespace(join(dir, 'vol'), { create: true });
    const vol = await Volume.create(ns, { size, blockSize: BLOCK });
    let fdToClose = -1;
    try {
      // Base: every block random; the raw file holds the same bytes.
      const fd = openSync(rawPath, 'w+');
      fdToClose = fd;
      const chunk = new Uint8Array(8 * MiB);
      for (let at = 0; at < size; at += chunk.length) {
        randomFillSync(chunk);
        writeSync(fd, chunk, 0, chunk.length, at);
        await vol.write(at, chunk);
      }
      await vol.flush();
      const images = [join(dir, 'base.qcow2')];
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-o', `cluster_size=${BLOCK}`, rawPath, images[0]!]);
      // Three overlays, each overwriting a different random ~10-25% of the blocks.
      const blocks = size / BLOCK;
      const rnd = prng(0x5eed);
      const blockBuf = new Uint8Array(BLOCK);
      for (let k = 0; k < fractions.length; k++) {
        await vol.snapshot(`s${k + 1}`);
        const n = Math.round(blocks * fractions[k]!);
        const chosen = new Set<number>();
        while (chosen.size < n) chosen.add(Math.floor(rnd() * blocks));
        for (const b of [...chosen].sort((x, y) => x - y)) {
          randomFillSync(blockBuf);
          writeSync(fd, blockBuf, 0, BLOCK, b * BLOCK);
          await vol.write(b * BLOCK, blockBuf);
        }
        await vol.flush();
        // qcow2 overlay with exactly the changed clusters: create it over the raw file in its new
        // state, then rebase (safe mode) onto the previous image — qemu-img copies every cluster
        // where the two backings differ, i.e. exactly this step's overwrites, with their bytes.
        const img = join(dir, `ov${k + 1}.qcow2`);
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${BLOCK}`, '-b', rawPath, '-F', 'raw', img]);
        await run('qemu-img', ['rebase', '-q', '-f', 'qcow2', '-b', images[k]!, '-F', 'qcow2', img]);
        images.push(img);
      }
      const top = images[images.length - 1]!;
      // Same bytes on both sides: qemu's chain against the raw file, ours sampled against it.
      await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', rawPath, top]);
      const step = strideFor(size);
      {
        const a = new Uint8Array(IO), b = new Uint8Array(IO);
        let at = 0;
        for (let i = 0; i < 512; i++) {
          readSync(fd, a, 0, IO, at);
          await vol.readInto(at, b);
          if (Buffer.compare(a, b) !== 0) throw new Error(`bench setup: volume differs from the raw file at ${at}`);
          at = (at + step) % size;
        }
      }
      closeSync(fd);
      fdToClose = -1;
      const setupSec = (performance.now() - setup0) / 1000;
      const { stdout: mapOut } = await run('qemu-img', ['info', '--backing-chain', '-f', 'qcow2', top]);
      const chainLen = (mapOut.match(/^image:/gm) ?? []).length;

      // qemu's AIO backend: use whichever of threads / io_uring is faster here (the peer at its best).
      let aio = 'threads';
      const probe = Math.min(readCount, quick ? 2000 : 20_000);
      try {
        const t = await qemuBench(top, { count: probe, depth: 16, step, write: false, aio: 'threads' });
        const u = await qemuBench(top, { count: probe, depth: 16, step, write: false, aio: 'io_uring' });
        if (u.opsPerSec > t.opsPerSec) aio = 'io_uring';
      } catch {
        aio = 'threads';
      }

      const common =
        `4 layers (base fully written + 3 overlays overwriting ${fractions.map((f) => `${f * 100}%`).join('/')} of the blocks, same random bytes on both sides, checked with qemu-img compare), ` +
        `${size / MiB} MiB, 64 KiB blocks = 64 KiB qcow2 clusters; ${IO / KiB} KiB requests at offsets (i*${step / IO} pages) mod size ` +
        `(qemu-img bench -o 0 -S ${step}: its stride sequence, used verbatim on our side, so both touch the same pages in the same order); ` +
        `warm page cache on both sides; qemu: -t writeback -i ${aio}; ours: NodeDirNamespace files, 'sync' io mode, Volume API from one Node thread; best of ${rounds} alternating rounds; setup ${setupSec.toFixed(1)} s`;
      // Warm-up of ours (JIT tiers) — qemu-img is native code and needs none; its own start-up is outside its timing.
      await oursBench(vol, { count: Math.min(readCount, 20_000), depth: 1, step, write: false });
      await oursBench(vol, { count: Math.min(readCount, 20_000), depth: 16, step, write: false });
      for (const depth of [1, 16]) {
        let ours = 0, peer = 0;
        for (let r = 0; r < rounds; r++) {
          ours = Math.max(ours, await oursBench(vol, { count: readCount, depth, step, write: false }));
          peer = Math.max(peer, (await qemuBench(top, { count: readCount, depth, step, write: false, aio })).opsPerSec);
        }
        emit(result(`chain: random 4 KiB reads, 4 layers, QD${depth}`, ours, peer, 'ops/s', `qemu-img bench (qcow2 chain of ${chainLen})`, 1.0,
          `${common}; ${readCount} reads, ${depth} in flight; verification on (the default): blocks already verified in this open (the warm-up touched them) serve 4 KiB reads without hashing`));
      }

      // Verification on vs off, and its cold cost: a fresh open has verified nothing, so the
      // first 4 KiB read of each 64 KiB block reads and hashes the whole block.
      const openView = (verify: 'on' | 'off') => Volume.open(new NodeDirNamespace(join(dir, 'vol'), { readOnly: true }), { readOnly: true, verify });
      for (const depth of [1, 16]) {
        let warmOn = 0, warmOff = 0, coldOn = 0, coldOff = 0, peer = 0;
        const off = await openView('off');
        try {
          await oursBench(off, { count: Math.min(readCount, 20_000), depth, step, write: false });
          for (let r = 0; r < rounds; r++) {
            warmOn = Math.max(warmOn, await oursBench(vol, { count: readCount, depth, step, write: false }));
            warmOff = Math.max(warmOff, await oursBench(off, { count: readCount, depth, step, write: false }));
            for (const [verify, set] of [['on', (x: number) => (coldOn = Math.max(coldOn, x))], ['off', (x: number) => (coldOff = Math.max(coldOff, x))]] as const) {
              const fresh = await openView(verify);
              try {
                set(await oursBench(fresh, { count: readCount, depth, step, write: false }));
              } finally {
                await fresh.close();
              }
            }
            peer = Math.max(peer, (await qemuBench(top, { count: readCount, depth, step, write: false, aio })).opsPerSec);
          }
        } finally {
          await off.close();
        }
        emit(result(`chain: random 4 KiB reads, 4 layers, QD${depth}, verification on vs off`, warmOn, warmOff, 'ops/s', 'the same chain opened with verify: off', 0.9,
          `${common}; ${readCount} reads, ${depth} in flight; both opens warmed up first`));
        emit(result(`chain: random 4 KiB reads, 4 layers, QD${depth}, fresh open (cold verification) vs qemu-img`, coldOn, peer, 'ops/s', `qemu-img bench (qcow2 chain of ${chainLen})`, 1.0,
          `${common}; ${readCount} reads, ${depth} in flight; ours opened fresh each round, so every block's first 4 KiB read reads and hashes the whole 64 KiB block; same-run cold with verify off: ${Math.round(coldOff)} ops/s (on/off ${(coldOn / coldOff).toFixed(2)})`));
      }

      // Writes go to a fresh top layer / overlay each round, so the read chain stays as measured
      // and every round starts from the same state: the first write to a 64 KiB block copies it up
      // (read 64 KiB + write 64 KiB) on both sides.
      await vol.snapshot('top');
      await oursBench(vol, { count: Math.min(writeCount, 2000), depth: 1, step, write: true }); // warm-up; the first round's revert discards it
      const wimg = join(dir, 'write.qcow2');
      for (const depth of [1, 16]) {
        let ours = 0, peer = 0;
        for (let r = 0; r < rounds; r++) {
          await vol.revert('top');
          ours = Math.max(ours, await oursBench(vol, { count: writeCount, depth, step, write: true }));
          await newOverlay(top, wimg);
          peer = Math.max(peer, (await qemuBench(wimg, { count: writeCount, depth, step, write: true, aio })).opsPerSec);
        }
        emit(result(`chain: random 4 KiB writes into a new top layer, QD${depth}`, ours, peer, 'ops/s', `qemu-img bench -w (new qcow2 overlay on the chain)`, undefined,
          `${common}; ${writeCount} writes of 4 KiB (0xab), ${depth} in flight, no flush inside the timed run on either side (qemu-img bench without --flush-interval); ` +
          `a 4 KiB write into a block not yet in the top layer copies the 64 KiB block up on both sides; ours serialises writes (one writer lock)`));
      }

      // 64 KiB writes at QD16 into a new top layer: whole-block (= whole-cluster) writes at
      // block-aligned offsets, so neither side has anything to copy up.
      {
        const depth = 16;
        const bigStep = strideFor(size, BLOCK);
        const count = Math.max(1, Math.floor(writeCount / 4));
        await vol.revert('top');
        await oursBench(vol, { count: Math.min(count, 500), depth, step: bigStep, write: true, io: BLOCK }); // warm-up
        let ours = 0, peer = 0;
        for (let r = 0; r < rounds; r++) {
          await vol.revert('top');
          ours = Math.max(ours, await oursBench(vol, { count, depth, step: bigStep, write: true, io: BLOCK }));
          await newOverlay(top, wimg);
          peer = Math.max(peer, (await qemuBench(wimg, { count, depth, step: bigStep, write: true, aio, io: BLOCK })).opsPerSec);
        }
        emit(result(`chain: random 64 KiB writes into a new top layer, QD${depth}`, ours, peer, 'ops/s', `qemu-img bench -w -s 65536 (new qcow2 overlay on the chain)`, 1.0,
          `${common}; but ${count} writes of 64 KiB (0xab) at block-aligned offsets (i*${bigStep / BLOCK} blocks) mod size (qemu-img bench -s 65536 -S ${bigStep}), ${depth} in flight, no flush in the timed run; ` +
          `whole-block writes: no copy-up on either side; ${((ours * BLOCK) / 1e6).toFixed(0)} MB/s ours, ${((peer * BLOCK) / 1e6).toFixed(0)} MB/s qemu`));
      }

      // Mixed 70/30 reads/writes of 4 KiB at QD16, reads through the chain, writes into a new top
      // layer. qemu-img bench does reads or writes, never both in one run, and qemu-io's aio
      // commands have no sustained queue depth (each returns at once; only aio_flush waits), so
      // the peer is the time-weighted composite of two qemu-img bench runs on one fresh overlay:
      // 0.7 N reads at QD16, then 0.3 N writes at QD16; ops/s = N / (t_reads + t_writes).
      {
        const depth = 16;
        const count = writeCount;
        const reads = Math.round(count * 0.7);
        const writes = count - reads;
        let ours = 0, peer = 0;
        await vol.revert('top');
        await oursBench(vol, { count: Math.min(count, 2000), depth, step, write: false, writeShare: 0.3 }); // warm-up
        for (let r = 0; r < rounds; r++) {
          await vol.revert('top');
          ours = Math.max(ours, await oursBench(vol, { count, depth, step, write: false, writeShare: 0.3 }));
          await newOverlay(top, wimg);
          const tr = (await qemuBench(wimg, { count: reads, depth, step, write: false, aio })).seconds;
          const tw = (await qemuBench(wimg, { count: writes, depth, step, write: true, aio })).seconds;
          peer = Math.max(peer, count / (tr + tw));
        }
        emit(result(`chain: mixed 70/30 random 4 KiB reads/writes, new top layer, QD${depth}`, ours, peer, 'ops/s', `qemu-img bench, ${reads} reads + ${writes} writes (-w) at QD${depth}, times added`, 1.0,
          `${common}; ${count} requests of 4 KiB, ${depth} in flight; ours: one run, each request a write with probability 0.3 (seeded) and a read otherwise, the writes into a new top layer; ` +
          `peer: qemu-img bench cannot mix reads and writes in one run and qemu-io's aio_read/aio_write keep no sustained queue depth, so two runs on one fresh overlay, ` +
          `${reads} reads then ${writes} writes, both QD${depth} with the same stride, ops/s = ${count} / (t_reads + t_writes) (the fairest composite: neither run waits on the other)`));
      }
    } finally {
      if (fdToClose >= 0) closeSync(fdToClose);
      await vol.close();
    }
  } finally {
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  }
  return out;
}

/** One timed pass over a volume: MB/s, CPU seconds of this process (all threads), each chunk's milliseconds. */
interface TimedPass {
  mbs: number;
  cpu: number;
  chunkMs: number[];
}

/** Reads the first `size` bytes of `v` in chunks of buf.length, one at a time. */
async function timedReads(v: Volume, size: number, buf: Uint8Array): Promise<TimedPass> {
  const chunkMs: number[] = [];
  const c0 = ownCpuSeconds();
  const t0 = performance.now();
  let t = t0;
  for (let at = 0; at < size; at += buf.length) {
    await v.readInto(at, buf);
    const now = performance.now();
    chunkMs.push(now - t);
    t = now;
  }
  return { mbs: size / 1e6 / ((t - t0) / 1000), cpu: ownCpuSeconds() - c0, chunkMs };
}

/**
 * The on-vs-off row from paired passes: MB/s medians and the median per-round ratio (with its
 * range), CPU seconds per GiB of each side (load-independent: what verification costs), the
 * load average, and the ratio of the median chunk times, which preemption by other processes
 * (they shift the tail, not the middle) barely moves.
 */
function onOffResult(name: string, on: TimedPass[], off: TimedPass[], size: number, load: [number, number], note: string): BenchResult {
  const r = pairedResult(name, on.map((p) => p.mbs), off.map((p) => p.mbs), 'MB/s', 'the same volume opened with verify: off', 0.9, note);
  const gib = size / 2 ** 30;
  r.oursCpuPerGiB = Math.round((median(on.map((p) => p.cpu)) / gib) * 1000) / 1000;
  r.peerCpuPerGiB = Math.round((median(off.map((p) => p.cpu)) / gib) * 1000) / 1000;
  r.load = load;
  const chunkRatio = median(off.flatMap((p) => p.chunkMs)) / median(on.flatMap((p) => p.chunkMs));
  r.note = `${note}; ratio of the median chunk times (robust to preemption) ${chunkRatio.toFixed(3)}`;
  return r;
}

/** Can this process drop the page cache (root on Linux)? */
function canDropCaches(): boolean {
  try {
    accessSync('/proc/sys/vm/drop_caches', constants.W_OK);
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

function dropCaches(): void {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

// ------------------------------------------------------------------------------------------
// sequential: whole-volume reads vs positional reads of a raw file with the same bytes

export async function benchSequential(opts: VolumeBenchOptions = {}): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const emit = (r: BenchResult): void => {
    out.push(r);
    opts.onResult?.(r);
  };
  const quick = opts.quick === true;
  const size = quick ? 64 * MiB : 1024 * MiB;
  const rounds = quick ? 2 : 5;
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-seq-'));
  try {
    const rawPath = join(dir, 'disk.raw');
    const vol = await Volume.create(new NodeDirNamespace(join(dir, 'vol'), { create: true }), { size, blockSize: BLOCK });
    try {
      const fd = openSync(rawPath, 'w+');
      const chunk = new Uint8Array(8 * MiB);
      for (let at = 0; at < size; at += chunk.length) {
        randomFillSync(chunk);
        writeSync(fd, chunk, 0, chunk.length, at);
        await vol.write(at, chunk);
      }
      await vol.flush();
      const store = await NodeFileStore.open(rawPath, { readOnly: true });
      // The same volume read with verification off (read-only opens take no writer lock).
      const volOff = await Volume.open(new NodeDirNamespace(join(dir, 'vol'), { readOnly: true }), { readOnly: true, verify: 'off' });
      try {
        const mbs = (ms: number): number => size / 1e6 / (ms / 1000);
        for (const cs of [1 * MiB, 4 * MiB]) {
          const buf = new Uint8Array(cs);
          const oursPass = async (): Promise<number> => {
            const t0 = performance.now();
            for (let at = 0; at < size; at += cs) await vol.readInto(at, buf);
            return mbs(performance.now() - t0);
          };
          const syncPass = (): number => {
            const t0 = performance.now();
            for (let at = 0; at < size; at += cs) {
              let done = 0;
              while (done < cs) done += readSync(fd, buf, done, cs - done, at + done);
            }
            return mbs(performance.now() - t0);
          };
          const timedPass = (v: Volume): Promise<TimedPass> => timedReads(v, size, buf);
          const offPass = async (): Promise<number> => (await timedPass(volOff)).mbs;
          const storePass = async (): Promise<number> => {
            const t0 = performance.now();
            for (let at = 0; at < size; at += cs) await store.readInto(at, buf);
            return mbs(performance.now() - t0);
          };
          // warm-up (page cache and JIT), then best of alternating rounds
          await oursPass(); syncPass(); await storePass(); await offPass();
          let ours = 0, sync = 0, viaStore = 0;
          const on: TimedPass[] = [], off: TimedPass[] = [];
          const load0 = load1();
          for (let r = 0; r < rounds; r++) {
            // on and off back to back, in alternating order, so drift in the machine's load hits both
            const pair = r % 2 === 0 ? [vol, volOff] : [volOff, vol];
            for (const v of pair) (v === vol ? on : off).push(await timedPass(v));
            ours = Math.max(ours, on[r]!.mbs);
            sync = Math.max(sync, syncPass());
            viaStore = Math.max(viaStore, await storePass());
          }
          const load = [load0, load1()] as [number, number];
          const common = `${size / MiB} MiB single-layer volume fully written with random bytes (64 KiB blocks, slots in order so each chunk is one coalesced run: one store read, or for runs over the store's 1 MiB blocking-read limit, pieces read in flight together on the thread pool) vs a raw file with the same bytes; ${cs / MiB} MiB chunks, one at a time, into one reused buffer; warm page cache; best of ${rounds} alternating passes`;
          emit(result(`sequential read, ${cs / MiB} MiB chunks`, ours, sync, 'MB/s', 'fs.readSync on a raw file', undefined,
            `${common}; peer: blocking positional reads (the fastest plain-Node route, no thread-pool hop); ours: Volume.readInto on NodeFileStore, which sends transfers > 1 MiB (syncMaxBytes) to the libuv thread pool`));
          emit(result(`sequential read, ${cs / MiB} MiB chunks (vs NodeFileStore)`, ours, viaStore, 'MB/s', 'NodeFileStore.readInto on a raw file', undefined,
            `${common}; peer: the same store class reading the raw file directly, so the ratio isolates the volume layer's cost (lock, resolve, slot lookup)`));
          emit(onOffResult(`sequential read, ${cs / MiB} MiB chunks, verification on vs off`, on, off, size, load,
            `${common.replace(`best of ${rounds} alternating passes`, `${rounds} paired rounds (medians)`)}; ours: every block hashed (XXH3-128, verify_blocks kernel) and compared with its stored checksum on every read; peer: verify 'off' (benchmarks only)`));
        }
        // From the device: the page cache dropped before every pass (root only), where the read,
        // not the hash, sets the pace.
        if (!quick && canDropCaches()) {
          const cs = 4 * MiB;
          const buf = new Uint8Array(cs);
          const pass = (v: Volume): Promise<TimedPass> => {
            dropCaches();
            return timedReads(v, size, buf);
          };
          const on: TimedPass[] = [], off: TimedPass[] = [];
          const load0 = load1();
          for (let r = 0; r < rounds; r++) {
            const pair = r % 2 === 0 ? [vol, volOff] : [volOff, vol];
            for (const v of pair) (v === vol ? on : off).push(await pass(v));
          }
          emit(onOffResult(`sequential read from the device, 4 MiB chunks, verification on vs off`, on, off, size, [load0, load1()],
            `${size / MiB} MiB single-layer volume, page cache dropped (echo 3 > /proc/sys/vm/drop_caches) before every pass; ${rounds} paired rounds (medians); ` +
            `runs longer than the store's blocking-read limit are read in pieces in flight together, hashed as each lands (the same pieces with verify off)`));
        }
      } finally {
        await volOff.close();
        await store.close();
        closeSync(fd);
      }
    } finally {
      await vol.close();
    }
  } finally {
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  }
  return out;
}
