/**
 * Load for shadow copies, shared by the stress tests (Node and Chromium) and the benchmarks:
 * a passive reader that reads random ranges of a shadow copy and checks every block against
 * the checksums taken with the copy, and a writer that overwrites random blocks as fast as it
 * can. Neutral code (no Node imports): it runs in worker_threads and in Web Workers alike.
 */
import type { ShadowCopyReader } from '../shadow/read-path.js';
import type { ShadowVolume } from '../shadow/shadow-volume.js';
import { hashSegments64 } from '../wasm/index.js';
import { prng } from './prng.js';

export interface VerifyOptions {
  /** stop after this many block reads (whichever comes first) */
  blockReads?: number;
  /** stop after this many milliseconds */
  ms?: number;
  /** ranges are 1..maxRun blocks */
  maxRun: number;
  seed: number;
  /** Int32Array over shared memory: stop when [0] becomes nonzero */
  stop?: Int32Array;
  /** stop once this many mismatches were seen (to show quickly that a broken reader is caught) */
  stopAfterMismatches?: number;
}

export interface VerifyResult {
  blockReads: number;
  reads: number;
  mismatches: number;
  /** first block that did not match, or -1 */
  firstMismatch: number;
  ms: number;
  fromVolume: number;
  fromDiff: number;
  rechecked: number;
}

/** XXH3-64 of every block of `volume` bytes (the last block may be short). */
export function blockSums(bytes: Uint8Array, blockSize: number): BigUint64Array {
  return hashSegments64(bytes, blockSize);
}

/** Read random ranges of `reader` and count blocks whose checksum differs from `sums`. */
export async function verifyLoop(reader: ShadowCopyReader, sums: BigUint64Array, o: VerifyOptions): Promise<VerifyResult> {
  const bs = reader.blockSize;
  const blocks = sums.length;
  const rnd = prng(o.seed);
  const buf = new Uint8Array(o.maxRun * bs);
  const got = new BigUint64Array(o.maxRun);
  const limit = o.blockReads ?? Number.POSITIVE_INFINITY;
  const t0 = performance.now();
  const deadline = o.ms === undefined ? Number.POSITIVE_INFINITY : t0 + o.ms;
  let blockReads = 0, reads = 0, mismatches = 0, firstMismatch = -1;
  while (blockReads < limit) {
    if ((reads & 63) === 0 && (performance.now() > deadline || (o.stop && Atomics.load(o.stop, 0) !== 0))) break;
    const n = 1 + Math.floor(rnd() * o.maxRun);
    const start = Math.floor(rnd() * (blocks - n + 1));
    const bytes = Math.min(n * bs, reader.size - start * bs);
    const view = buf.subarray(0, bytes);
    await reader.readBlocks(start, n, view);
    hashSegments64(view, bs, got);
    for (let i = 0; i < n; i++) {
      if (got[i] !== sums[start + i]) {
        mismatches++;
        if (firstMismatch < 0) firstMismatch = start + i;
      }
    }
    blockReads += n;
    reads++;
    if (o.stopAfterMismatches !== undefined && mismatches >= o.stopAfterMismatches) break;
  }
  const s = reader.stats;
  return { blockReads, reads, mismatches, firstMismatch, ms: performance.now() - t0, fromVolume: s.fromVolume, fromDiff: s.fromDiff, rechecked: s.rechecked };
}

export interface HammerOptions {
  /** blocks per write: 1..maxRun */
  maxRun: number;
  seed: number;
  /** Int32Array over shared memory, or a plain one: stop when [0] becomes nonzero */
  stop: Int32Array;
  /** create a new shadow copy every this many writes (and delete the one made before), so first writes never run out */
  rotateEvery?: number;
  /** at most this many rotations */
  maxRotations?: number;
  /** flush every this many writes (each flush is a group commit: publications, then volume writes) */
  flushEvery?: number;
}

/** Overwrite random blocks with fresh bytes as fast as possible until told to stop; returns writes done. */
export async function hammer(sv: ShadowVolume, o: HammerOptions): Promise<{ writes: number; bytes: number; rotations: number }> {
  const bs = sv.blockSize;
  const rnd = prng(o.seed);
  const data = new Uint8Array(o.maxRun * bs);
  let writes = 0, bytes = 0, rotations = 0;
  let extra: string | null = null;
  while (Atomics.load(o.stop, 0) === 0) {
    const n = 1 + Math.floor(rnd() * o.maxRun);
    const start = Math.floor(rnd() * (sv.blocks - n + 1));
    const len = Math.min(n * bs, sv.size - start * bs);
    const chunk = data.subarray(0, len);
    // fresh content each time (cheap: a few words per block)
    for (let i = 0; i < len; i += 64) chunk[i] = (writes + i) & 0xff;
    chunk[0] = writes & 0xff;
    chunk[len - 1] = (writes >>> 8) & 0xff;
    await sv.write(start * bs, chunk);
    // Let readers' sync requests and messages in: a store doing synchronous I/O never yields by itself.
    await yieldToEventLoop();
    writes++;
    bytes += len;
    if (o.flushEvery && writes % o.flushEvery === 0) await sv.flush();
    if (o.rotateEvery && writes % o.rotateEvery === 0 && rotations < (o.maxRotations ?? 16)) {
      const made = await sv.createShadow({ name: `rotate-${rotations}` });
      if (extra) await sv.deleteShadow(extra);
      extra = made.name;
      rotations++;
    }
  }
  return { writes, bytes, rotations };
}

/** Yield to the event loop (macrotask): setImmediate in Node, a MessageChannel hop in browsers. */
export function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (fn: () => void) => void };
  if (typeof g.setImmediate === 'function') return new Promise((r) => g.setImmediate!(r));
  return new Promise((r) => {
    const c = new MessageChannel();
    c.port1.onmessage = () => {
      c.port1.close();
      r();
    };
    c.port2.postMessage(0);
  });
}
