import { expect } from 'vitest';
import { StrataError } from '../../../src/errors.js';

/** A module Worker running the stratadisk worker host (src/worker/entry.ts, bundled by Vite). */
export function newWorker(): Worker {
  return new Worker(new URL('../../../src/worker/entry.ts', import.meta.url), { type: 'module' });
}

/** Unique per run, so reruns and parallel files never share an OPFS directory or database. */
export function uniquePath(prefix: string): string {
  return `test-${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Deterministic bytes (xorshift32). */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (Math.imul(seed, 2654435761) + 1) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<StrataError> {
  const e = await p.then(
    () => {
      throw new Error(`expected a ${code} error, but it resolved`);
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(StrataError);
  expect((e as StrataError).code).toBe(code);
  return e as StrataError;
}
