import { prng } from '../../../src/bench/prng.js';
import type { Link } from '../../../src/consistency/link.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import type { Store } from '../../../src/store/store.js';
import { Volume } from '../../../src/volume/volume.js';

/** Seeded bytes. */
export function randomBytes(n: number, seed: number): Uint8Array {
  const r = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const x = Math.floor(r() * 2 ** 32);
    out[i] = x & 255;
    if (i + 1 < n) out[i + 1] = (x >>> 8) & 255;
    if (i + 2 < n) out[i + 2] = (x >>> 16) & 255;
    if (i + 3 < n) out[i + 3] = x >>> 24;
  }
  return out;
}

/** `k` distinct segment indices of `count`, seeded, ascending. */
export function pickSegments(count: number, k: number, seed: number): number[] {
  const r = prng(seed);
  const set = new Set<number>();
  while (set.size < k) set.add(Math.floor(r() * count));
  return [...set].sort((a, b) => a - b);
}

/** A copy of `base` with one byte changed in each of `segments` (of `segmentSize`). */
export function diverge(base: Uint8Array, segments: readonly number[], segmentSize: number, seed: number): Uint8Array {
  const r = prng(seed);
  const out = base.slice();
  for (const s of segments) {
    const len = Math.min(segmentSize, base.length - s * segmentSize);
    const at = s * segmentSize + Math.floor(r() * len);
    out[at] = out[at]! ^ (1 + Math.floor(r() * 255));
  }
  return out;
}

export async function readAll(store: { size: number; read(o: number, n: number): Promise<Uint8Array> }): Promise<Uint8Array> {
  return store.read(0, store.size);
}

/** A volume in memory holding `content`. */
export async function volumeWith(content: Uint8Array, blockSize = 64 * 1024, ns = new MemoryNamespace()): Promise<Volume> {
  const v = await Volume.create(ns, { size: content.length, blockSize });
  await v.write(0, content);
  await v.flush();
  return v;
}

/** Wrap a link so every message it carries (both ways) is counted: JSON plus payload bytes. */
export function countingLink<T>(link: Link<T>, count: { sent: number; received: number }): Link<T> {
  const size = (m: unknown): number => {
    let payload = 0;
    const json = JSON.stringify(m, (k, v: unknown) => {
      if (k === 'data' && v instanceof Uint8Array) {
        payload += v.length;
        return undefined;
      }
      return v;
    });
    return json.length + payload;
  };
  return {
    send(m) {
      count.sent += size(m);
      link.send(m);
    },
    listen(h) {
      link.listen({
        message(m) {
          count.received += size(m);
          h.message(m);
        },
        close: (r) => h.close(r),
      });
    },
    close: () => link.close(),
  };
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export type { Store };
