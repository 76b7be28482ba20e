/**
 * The shared ObjectStore conformance suite: every backend (memory, S3, R2, a directory, ...)
 * runs it, so the contract of src/transfer/object-store.ts is checked the same way
 * everywhere. `make` gives a fresh, empty store per test and its cleanup.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isStrataError, type ErrorCode } from '../../../src/errors.js';
import type { ObjectInfo, ObjectStore } from '../../../src/transfer/object-store.js';

export interface ObjectStoreSetup {
  store: ObjectStore;
  cleanup(): Promise<void>;
}

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function codeOf(p: Promise<unknown> | (() => Promise<unknown>)): Promise<ErrorCode | 'resolved' | 'other'> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'resolved';
  } catch (e) {
    return isStrataError(e) ? e.code : 'other';
  }
}

async function all(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of it) out.push(o);
  return out;
}

/** Puts `keys` (small bodies), `parallel` at a time. */
async function putMany(store: ObjectStore, keys: string[], parallel = 16): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < keys.length) {
        const k = keys[next++]!;
        await store.put(k, new TextEncoder().encode(k));
      }
    }),
  );
}

export const BAD_KEYS = ['', '/a', 'a/', 'a//b', '..', '.', 'a/../b', 'a/./b', '../x', 'a b', 'a\\b', 'a?b', 'a#b', 'a%2Fb', 'ä', 'x'.repeat(1025)];

export interface ConformanceOptions {
  /** keys for the listing-pagination test (default 1003: more than S3's and R2's 1000-key page);
   * fewer for a backend whose test double is slow, with a store configured for smaller pages */
  manyKeys?: number;
}

export function objectStoreConformance(name: string, make: () => Promise<ObjectStoreSetup>, options: ConformanceOptions = {}): void {
  const many = options.manyKeys ?? 1003;
  describe(`ObjectStore conformance: ${name}`, () => {
    let setup: ObjectStoreSetup | undefined;
    const open = async () => {
      setup = await make();
      return setup.store;
    };
    afterEach(async () => {
      await setup?.cleanup();
      setup = undefined;
    });

    it('puts and gets whole objects, an empty one too; missing ones are null', async () => {
      const s = await open();
      const data = bytes(70_000, 1);
      expect(await s.put('a/b/c.bin', data)).toBe(true);
      expect(await s.get('a/b/c.bin')).toEqual(data);
      expect(await s.put('empty', new Uint8Array(0))).toBe(true);
      expect(await s.get('empty')).toEqual(new Uint8Array(0));
      expect(await s.get('a/b/missing')).toBeNull();
      expect(await s.get('nothing-here', { offset: 0, length: 10 })).toBeNull();
      expect(await s.get('nothing-here', { offset: 0, length: 0 })).toBeNull();
    });

    it('reads ranges: inside, across the end, at and past the end, of length 0', async () => {
      const s = await open();
      const data = bytes(10_000, 2);
      await s.put('r', data);
      expect(await s.get('r', { offset: 0, length: 1 })).toEqual(data.subarray(0, 1));
      expect(await s.get('r', { offset: 1234, length: 4321 })).toEqual(data.subarray(1234, 5555));
      expect(await s.get('r', { offset: 9_990, length: 100 })).toEqual(data.subarray(9_990));
      expect(await s.get('r', { offset: 0, length: 10_000 })).toEqual(data);
      expect(await s.get('r', { offset: 10_000, length: 5 })).toEqual(new Uint8Array(0));
      expect(await s.get('r', { offset: 50_000, length: 5 })).toEqual(new Uint8Array(0));
      expect(await s.get('r', { offset: 10, length: 0 })).toEqual(new Uint8Array(0));
    });

    it('head gives the size (and a plausible time) or null', async () => {
      const s = await open();
      await s.put('h/x', bytes(1234, 3));
      const h = await s.head('h/x');
      expect(h?.key).toBe('h/x');
      expect(h?.size).toBe(1234);
      if (h?.modified !== undefined) expect(Math.abs(h.modified - Date.now())).toBeLessThan(24 * 3600_000);
      expect(await s.head('h/y')).toBeNull();
    });

    it('put replaces an object whole; ifAbsent leaves an existing one alone and says so', async () => {
      const s = await open();
      expect(await s.put('p', bytes(5000, 4))).toBe(true);
      expect(await s.put('p', bytes(100, 5))).toBe(true);
      expect(await s.get('p')).toEqual(bytes(100, 5));
      expect(await s.put('p', bytes(200, 6), { ifAbsent: true })).toBe(false);
      expect(await s.get('p')).toEqual(bytes(100, 5));
      expect(await s.put('q', bytes(200, 7), { ifAbsent: true })).toBe(true);
      expect(await s.get('q')).toEqual(bytes(200, 7));
      // the caller's buffer changed later does not change the stored object
      const buf = bytes(64, 8);
      await s.put('copy', buf);
      buf.fill(0);
      expect(await s.get('copy')).toEqual(bytes(64, 8));
    });

    it('concurrent ifAbsent puts of one key: at least one wins, the object is whole', async () => {
      const s = await open();
      const a = bytes(3000, 9);
      const b = bytes(3000, 10);
      const r = await Promise.all([s.put('race', a, { ifAbsent: true }), s.put('race', b, { ifAbsent: true })]);
      expect(r.some((x) => x)).toBe(true);
      const got = await s.get('race');
      expect([a, b].some((d) => got !== null && d.length === got.length && d.every((v, i) => v === got[i]))).toBe(true);
    });

    it('lists in key order, by prefix, with sizes', async () => {
      const s = await open();
      const keys = ['b/2', 'a/1', 'a/10', 'a/2', 'a-b', 'ab', 'c', 'a/x/y'];
      for (const k of keys) await s.put(k, bytes(k.length * 10, 11));
      const listed = await all(s.list(''));
      expect(listed.map((o) => o.key)).toEqual([...keys].sort());
      expect(listed.find((o) => o.key === 'a/x/y')?.size).toBe(50);
      expect((await all(s.list('a/'))).map((o) => o.key)).toEqual(['a/1', 'a/10', 'a/2', 'a/x/y']);
      expect((await all(s.list('a'))).map((o) => o.key)).toEqual(['a-b', 'a/1', 'a/10', 'a/2', 'a/x/y', 'ab']);
      expect(await all(s.list('zzz/'))).toEqual([]);
    });

    it(`lists ${many} keys (more than a page), in order`, async () => {
      const s = await open();
      const keys = Array.from({ length: many }, (_, i) => `many/${i.toString(16).padStart(4, '0')}`);
      await putMany(s, keys);
      await s.put('other', new Uint8Array(1));
      const listed = (await all(s.list('many/'))).map((o) => o.key);
      expect(listed.length).toBe(many);
      expect(listed).toEqual(keys);
      await s.delete(keys);
      expect(await all(s.list('many/'))).toEqual([]);
      expect(await s.head('other')).not.toBeNull();
    });

    it('deletes objects; missing ones and repeats are not an error', async () => {
      const s = await open();
      await s.put('d/1', bytes(10, 12));
      await s.put('d/2', bytes(10, 13));
      await s.put('d/3', bytes(10, 14));
      await s.delete(['d/1', 'd/missing', 'd/2', 'd/1']);
      expect(await s.get('d/1')).toBeNull();
      expect(await s.head('d/2')).toBeNull();
      expect(await s.get('d/3')).toEqual(bytes(10, 14));
      await s.delete(['d/3']);
      await s.delete([]);
      await s.delete(['never/was']);
      expect(await all(s.list('d/'))).toEqual([]);
    });

    it('refuses bad keys with invalid-argument before doing anything', async () => {
      const s = await open();
      for (const k of BAD_KEYS) {
        expect(await codeOf(() => s.get(k)), `get ${JSON.stringify(k.slice(0, 20))}`).toBe('invalid-argument');
        expect(await codeOf(() => s.head(k)), `head ${JSON.stringify(k.slice(0, 20))}`).toBe('invalid-argument');
        expect(await codeOf(() => s.put(k, new Uint8Array(1))), `put ${JSON.stringify(k.slice(0, 20))}`).toBe('invalid-argument');
        expect(await codeOf(() => s.delete(['ok', k])), `delete ${JSON.stringify(k.slice(0, 20))}`).toBe('invalid-argument');
      }
      expect(await all(s.list(''))).toEqual([]);
    });

    it('an aborted signal stops every operation with aborted, and an aborted put writes nothing', async () => {
      const s = await open();
      await s.put('x', bytes(10, 15));
      const c = new AbortController();
      c.abort();
      expect(await codeOf(() => s.get('x', undefined, c.signal))).toBe('aborted');
      expect(await codeOf(() => s.get('x', { offset: 0, length: 2 }, c.signal))).toBe('aborted');
      expect(await codeOf(() => s.head('x', c.signal))).toBe('aborted');
      expect(await codeOf(() => s.put('y', bytes(10, 16), { signal: c.signal }))).toBe('aborted');
      expect(await codeOf(() => s.put('y', bytes(10, 16), { ifAbsent: true, signal: c.signal }))).toBe('aborted');
      expect(await codeOf(() => all(s.list('', c.signal)))).toBe('aborted');
      expect(await codeOf(() => s.delete(['x'], c.signal))).toBe('aborted');
      expect(await s.head('y')).toBeNull();
      expect(await s.get('x')).toEqual(bytes(10, 15));
    });
  });
}
