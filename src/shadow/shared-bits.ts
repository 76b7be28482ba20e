/**
 * Bitmaps that passive readers in other workers/threads read while the writer sets bits:
 * one bit per volume block in a SharedArrayBuffer, set with Atomics.or and read with
 * Atomics.load (sequentially consistent), so a reader that sees a volume write also sees the
 * bit published before it. This is shared JS memory, not WASM memory: the WASM kernels keep the
 * writer's private bitmaps. The buffer is flat (volume blocks / 8 bytes); the OS commits its
 * zero pages only when touched, so an untouched range costs address space, not memory.
 */
import { StrataError } from '../errors.js';

/** Is SharedArrayBuffer usable here (Node, or a cross-origin isolated page/worker)? */
export function sharedMemoryAvailable(): boolean {
  if (typeof SharedArrayBuffer !== 'function') return false;
  const g = globalThis as { crossOriginIsolated?: boolean };
  return g.crossOriginIsolated !== false;
}

/** Largest shared bitmap we allocate (2^32 blocks). */
const MAX_WORDS = 2 ** 27;

export function createSharedBits(blocks: number): SharedArrayBuffer {
  const words = Math.max(1, Math.ceil(blocks / 32));
  if (words > MAX_WORDS) throw new StrataError('invalid-argument', `A shared bitmap of ${blocks} blocks is too large; use a larger block size.`);
  return new SharedArrayBuffer(words * 4);
}

/** Set bits for the flat [start, count]* runs (whole words with one Atomics.or each). */
export function publishRuns(words: Int32Array, runs: Uint32Array, runCount: number): void {
  for (let r = 0; r < runCount; r++) {
    let b = runs[2 * r]!;
    const end = b + runs[2 * r + 1]!;
    while (b < end) {
      const w = b >>> 5;
      const from = b & 31;
      const to = Math.min(32, from + (end - b));
      const mask = to - from === 32 ? -1 : (((1 << (to - from)) - 1) << from) | 0;
      Atomics.or(words, w, mask);
      b += to - from;
    }
  }
}

/**
 * The owner of each block of [start, start+count) across `chain` (index 0 first: the first
 * bitmap with the bit wins), as flat [runStart, runLength, owner]* runs; owner 0xFFFF = none.
 * Reads whole words with Atomics.load, so every word is a consistent snapshot.
 */
export function sharedRuns(chain: readonly Int32Array[], start: number, count: number): Uint32Array {
  const out: number[] = [];
  const end = start + count;
  let runStart = start;
  let runOwner = -1;
  let b = start;
  while (b < end) {
    const w = b >>> 5;
    const from = b & 31;
    const n = Math.min(32 - from, end - b);
    const span = n === 32 ? -1 : (((1 << n) - 1) << from) | 0;
    let rest = span;
    // owner per bit of this word: first chain member holding it
    let owners: number[] | null = null;
    let anyOwner = -1;
    for (let k = 0; k < chain.length && rest !== 0; k++) {
      const m = Atomics.load(chain[k]!, w) & rest;
      if (m === 0) continue;
      if (m === rest && owners === null && rest === span) {
        anyOwner = k;
        rest = 0;
        break;
      }
      owners ??= new Array<number>(32).fill(0xffff);
      for (let i = from; i < from + n; i++) if ((m >>> i) & 1) owners[i] = k;
      rest &= ~m;
    }
    if (owners === null) {
      const o = anyOwner >= 0 ? anyOwner : 0xffff;
      if (o !== runOwner) {
        if (runOwner >= 0) out.push(runStart, b - runStart, runOwner);
        runStart = b;
        runOwner = o;
      }
    } else {
      for (let i = from; i < from + n; i++) {
        const o = owners[i]!;
        if (o !== runOwner) {
          if (runOwner >= 0) out.push(runStart, w * 32 + i - runStart, runOwner);
          runStart = w * 32 + i;
          runOwner = o;
        }
      }
    }
    b += n;
  }
  if (runOwner >= 0) out.push(runStart, end - runStart, runOwner);
  return Uint32Array.from(out);
}

/**
 * Index of the control block: [0] chain generation (bumped after every chain change message),
 * [1] a cell used only as a full fence before re-checking bits.
 */
export const CTL_GEN = 0;
export const CTL_FENCE = 1;

export function createControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(16);
}
