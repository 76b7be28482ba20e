/**
 * The shared conformance suites: every Store backend and every StoreNamespace runs these, so
 * the contract written in src/store/store.ts is checked the same way everywhere. Backends opt
 * out of what they cannot do through capability fields, never by editing the suite.
 */
import { describe, expect, it } from 'vitest';
import { isStrataError, type ErrorCode } from '../../../src/errors.js';
import type { Store, StoreNamespace } from '../../../src/store/store.js';

/** What a store backend gives the suite; `setup` is called once per test case. */
export interface StoreSetup {
  /** Opens the store under test. Resizable stores must start empty. */
  open(): Promise<Store>;
  /** Opens the same bytes again (after the previous store was closed): checks persistence. */
  reopen?(): Promise<Store>;
  /** Opens the same bytes read-only: checks that writes are refused. */
  openReadOnly?(): Promise<Store>;
  cleanup(): Promise<void>;
  /** Set for stores with a size fixed from outside (raw devices): their size in bytes. */
  fixedSize?: number;
  /** Sparse writes at multi-GiB offsets work (file stores), so test a 5 GiB offset. */
  largeOffsets?: boolean;
}

/** What a namespace backend gives the suite; `setup` is called once per test case. */
export interface NamespaceSetup {
  /** A writable, empty namespace. */
  namespace: StoreNamespace;
  /** A new namespace object over the same names (as after a restart). */
  reopen?(): Promise<StoreNamespace>;
  /** A read-only namespace over the same names. */
  readOnly?(): Promise<StoreNamespace>;
  cleanup(): Promise<void>;
}

/** Small deterministic PRNG (mulberry32), so a failing random case is reproducible by seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** `length` bytes of seeded pseudo-random data. */
export function pattern(length: number, seed: number): Uint8Array {
  const rnd = prng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (rnd() * 256) | 0;
  return out;
}

/** Resolves to the StrataError code `promise` rejected with; fails if it resolved or threw something else. */
export async function errorCode(promise: Promise<unknown>): Promise<ErrorCode> {
  try {
    await promise;
  } catch (e) {
    if (isStrataError(e)) return e.code;
    throw new Error(`expected a StrataError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a rejection, but the call succeeded');
}

/** Calls `fn` synchronously-or-not and returns the error code, so sync throws count too. */
async function codeOf(fn: () => Promise<unknown>): Promise<ErrorCode> {
  return errorCode((async () => fn())());
}

/** Byte-by-byte equality with the first difference in the message (toEqual is slow on MiBs). */
export function equalBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      throw new Error(`${what}: first difference at byte ${i}: got ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

const GIB = 2 ** 30;

/** True when every byte of `bytes` is `value` (a plain loop: fast enough for 64 MiB). */
export function allBytes(bytes: Uint8Array, value: number): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== value) return false;
  return true;
}

/** Registers the Store contract cases under `describe(label)`. */
export function storeConformance(label: string, setup: () => Promise<StoreSetup>): void {
  /** Runs `fn` on a fresh store and always closes it and cleans up. */
  async function withStore(fn: (store: Store, env: StoreSetup) => Promise<void>): Promise<void> {
    const env = await setup();
    try {
      const store = await env.open();
      try {
        await fn(store, env);
      } finally {
        await store.close();
      }
    } finally {
      await env.cleanup();
    }
  }

  describe(`Store conformance: ${label}`, () => {
    it('reports its initial size and capabilities', () =>
      withStore(async (s, env) => {
        expect(s.readOnly).toBe(false);
        if (env.fixedSize !== undefined) {
          expect(s.resizable).toBe(false);
          expect(s.size).toBe(env.fixedSize);
        } else {
          expect(s.resizable).toBe(true);
          expect(s.size).toBe(0);
        }
      }));

    it('reads back what it wrote', () =>
      withStore(async (s) => {
        const data = pattern(10_000, 1);
        await s.write(0, data);
        equalBytes(await s.read(0, data.length), data, 'round trip');
        const into = new Uint8Array(data.length);
        await s.readInto(0, into);
        equalBytes(into, data, 'readInto');
      }));

    it('writes and reads at offsets, including unaligned ones', () =>
      withStore(async (s) => {
        const pieces: [number, Uint8Array][] = [
          [4096, pattern(4096, 2)],
          [1, pattern(7, 3)],
          [70_001, pattern(65_536 + 3, 4)],
          [20_000, pattern(1, 5)],
        ];
        for (const [off, d] of pieces) await s.write(off, d);
        for (const [off, d] of pieces) equalBytes(await s.read(off, d.length), d, `read at ${off}`);
      }));

    it('overwrites in place', () =>
      withStore(async (s) => {
        const a = pattern(20_000, 6);
        const b = pattern(5_000, 7);
        await s.write(0, a);
        await s.write(7_777, b);
        const expected = a.slice();
        expected.set(b, 7_777);
        equalBytes(await s.read(0, a.length), expected, 'after overwrite');
      }));

    it('readInto fills exactly the target view and nothing around it', () =>
      withStore(async (s) => {
        const data = pattern(8192, 8);
        await s.write(0, data);
        const outer = new Uint8Array(10_000).fill(0xee);
        const view = outer.subarray(1000, 1000 + 3000);
        await s.readInto(123, view);
        equalBytes(view, data.subarray(123, 3123), 'view');
        expect(allBytes(outer.subarray(0, 1000), 0xee)).toBe(true);
        expect(allBytes(outer.subarray(4000), 0xee)).toBe(true);
      }));

    it('readIntoNow, where offered, reads what readInto reads or declines, and checks ranges alike', () =>
      withStore(async (s) => {
        if (!s.readIntoNow) return;
        const data = pattern(70_000, 12);
        if (s.resizable) await s.write(0, data);
        else await s.write(0, data.subarray(0, Math.min(data.length, s.size)));
        const n = Math.min(data.length, s.size);
        for (const [off, len] of [[0, 1], [123, 3000], [0, n], [n - 1, 1], [n, 0]] as const) {
          const outer = new Uint8Array(len + 20).fill(0xee);
          const view = outer.subarray(10, 10 + len);
          if (!s.readIntoNow(off, view)) await s.readInto(off, view);
          equalBytes(view, data.subarray(off, off + len), `readIntoNow(${off}, ${len})`);
          expect(allBytes(outer.subarray(0, 10), 0xee) && allBytes(outer.subarray(10 + len), 0xee)).toBe(true);
        }
        const size = s.size;
        const target = new Uint8Array(11).fill(0xaa);
        expect(await codeOf(async () => s.readIntoNow!(size - 10, target))).toBe('out-of-range');
        expect(allBytes(target, 0xaa)).toBe(true);
        expect(await codeOf(async () => s.readIntoNow!(-1, target))).toBe('invalid-argument');
      }));

    it('matches a byte-array model over 2,500 seeded random operations', () =>
      withStore(async (s, env) => {
        const rnd = prng(0x5eed);
        const int = (n: number) => Math.floor(rnd() * n);
        const fixed = env.fixedSize !== undefined;
        // Random ops stay inside a window so they overlap often; fixed stores start with
        // whatever the device holds, so the model starts from a read of the window.
        const window = fixed ? Math.min(env.fixedSize!, 512 * 1024) : 512 * 1024;
        let model = fixed ? await s.read(0, window) : new Uint8Array(0);
        let modelSize = fixed ? window : 0;
        const ensure = (n: number) => {
          if (n <= model.length) return;
          const next = new Uint8Array(Math.max(n, model.length * 2));
          next.set(model);
          model = next;
        };
        for (let op = 0; op < 2500; op++) {
          const kind = rnd();
          const len = rnd() < 0.2 ? int(4) : rnd() < 0.8 ? 1 + int(9000) : 1 + int(70_000);
          if (kind < 0.45) {
            const off = int(Math.max(1, window - len));
            const data = pattern(len, op);
            await s.write(off, data);
            if (len === 0) continue; // an empty write changes nothing, not even the size
            ensure(off + len);
            if (off > modelSize) model.fill(0, modelSize, off);
            model.set(data, off);
            modelSize = Math.max(modelSize, off + len);
          } else if (kind < 0.9) {
            if (modelSize === 0) continue;
            const off = int(modelSize);
            const n = Math.min(len, modelSize - off);
            const expected = model.subarray(off, off + n);
            if (rnd() < 0.5) {
              equalBytes(await s.read(off, n), expected, `op ${op}: read(${off}, ${n})`);
            } else {
              const pad = int(16);
              const outer = new Uint8Array(n + 2 * pad).fill(0x5a);
              await s.readInto(off, outer.subarray(pad, pad + n));
              equalBytes(outer.subarray(pad, pad + n), expected, `op ${op}: readInto(${off}, ${n})`);
            }
          } else if (kind < 0.96 && !fixed) {
            const size = int(window);
            await s.truncate(size);
            if (size > modelSize) {
              ensure(size);
              model.fill(0, modelSize, size);
            }
            modelSize = size;
          } else {
            await s.flush();
          }
          if (!fixed) expect(s.size, `op ${op}: size`).toBe(modelSize);
        }
        equalBytes(await s.read(0, modelSize), model.subarray(0, modelSize), 'final contents');
      }));

    it('refuses reads past the end with out-of-range and reads nothing', () =>
      withStore(async (s) => {
        if (s.resizable) await s.write(0, pattern(5000, 9));
        const size = s.size;
        for (const [off, len] of [
          [size, 1],
          [size - 10, 11],
          [size + 4096, 4096],
          [0, size + 1],
        ] as const) {
          const target = new Uint8Array(len).fill(0xaa);
          expect(await codeOf(() => s.readInto(off, target)), `readInto(${off}, ${len})`).toBe('out-of-range');
          expect(allBytes(target, 0xaa), `target untouched after readInto(${off}, ${len})`).toBe(true);
          expect(await codeOf(() => s.read(off, len)), `read(${off}, ${len})`).toBe('out-of-range');
        }
        expect((await s.read(size - 10, 10)).length).toBe(10);
      }));

    it('handles zero-length reads and writes', () =>
      withStore(async (s) => {
        if (s.resizable) await s.write(0, pattern(100, 10));
        const size = s.size;
        expect((await s.read(0, 0)).length).toBe(0);
        expect((await s.read(size, 0)).length).toBe(0);
        await s.readInto(size, new Uint8Array(0));
        await s.write(0, new Uint8Array(0));
        await s.write(size, new Uint8Array(0));
        expect(s.size).toBe(size);
        if (s.resizable) {
          // An empty write past the end writes nothing, so it does not grow the store either.
          await s.write(size + 1000, new Uint8Array(0));
          expect(s.size).toBe(size);
        }
      }));

    it('rejects negative, fractional and non-finite offsets and sizes with invalid-argument', () =>
      withStore(async (s) => {
        await s.write(0, pattern(100, 11)).catch(() => {});
        for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, -0.5, 2 ** 53]) {
          expect(await codeOf(() => s.read(bad, 1)), `read(${bad})`).toBe('invalid-argument');
          expect(await codeOf(() => s.readInto(bad, new Uint8Array(1))), `readInto(${bad})`).toBe('invalid-argument');
          expect(await codeOf(() => s.write(bad, new Uint8Array(1))), `write(${bad})`).toBe('invalid-argument');
          expect(await codeOf(() => s.truncate(bad)), `truncate(${bad})`).toBe('invalid-argument');
        }
      }));

    it('rejects invalid read lengths with invalid-argument, before allocating', () =>
      withStore(async (s) => {
        for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          expect(await codeOf(() => s.read(0, bad)), `read(0, ${bad})`).toBe('invalid-argument');
        }
        expect(await codeOf(() => s.read(0, 2 ** 40))).toBe('out-of-range');
      }));

    it('serves reads and writes to disjoint ranges in flight at once', () =>
      withStore(async (s) => {
        const count = 64;
        const stride = 10_000;
        const chunks = Array.from({ length: count }, (_, i) => pattern(1 + ((i * 977) % stride), 100 + i));
        // All writes at once; on a resizable store several of them grow it concurrently.
        await Promise.all(chunks.map((c, i) => s.write(i * stride, c)));
        if (s.resizable) expect(s.size).toBe((count - 1) * stride + chunks[count - 1]!.length);
        const reads = await Promise.all(chunks.map((c, i) => s.read(i * stride, c.length)));
        reads.forEach((r, i) => equalBytes(r, chunks[i]!, `concurrent read ${i}`));
        // Reads of even slots and writes to odd slots, interleaved, all in flight together.
        const next = chunks.map((c, i) => (i % 2 ? pattern(c.length, 900 + i) : c));
        const mixed = await Promise.all(
          next.map((c, i) => (i % 2 ? s.write(i * stride, c).then(() => undefined) : s.read(i * stride, c.length))),
        );
        mixed.forEach((r, i) => {
          if (r) equalBytes(r, chunks[i]!, `mixed read ${i}`);
        });
        const after = await Promise.all(next.map((c, i) => s.read(i * stride, c.length)));
        after.forEach((r, i) => equalBytes(r, next[i]!, `after mixed ${i}`));
      }));

    it('after close, every call throws closed', () =>
      withStore(async (s) => {
        await s.write(0, pattern(10, 12));
        await s.close();
        await s.close(); // closing twice is harmless
        expect(await codeOf(() => s.read(0, 1))).toBe('closed');
        expect(await codeOf(() => s.readInto(0, new Uint8Array(1)))).toBe('closed');
        expect(await codeOf(() => s.write(0, new Uint8Array(1)))).toBe('closed');
        expect(await codeOf(() => s.flush())).toBe('closed');
        expect(await codeOf(() => s.truncate(0))).toBe('closed');
      }));

    it('a read-only store reads but refuses write and truncate with read-only', async (ctx) => {
      const env = await setup();
      try {
        if (!env.openReadOnly) return ctx.skip('no openReadOnly in setup');
        const w = await env.open();
        const data = pattern(3000, 13);
        await w.write(0, data);
        await w.flush();
        await w.close();
        const r = await env.openReadOnly();
        try {
          expect(r.readOnly).toBe(true);
          equalBytes(await r.read(0, data.length), data, 'read-only read');
          const size = r.size;
          expect(await codeOf(() => r.write(0, new Uint8Array([1])))).toBe('read-only');
          expect(await codeOf(() => r.write(size, new Uint8Array([1])))).toBe('read-only');
          expect(await codeOf(() => r.truncate(0))).toBe('read-only');
          await r.flush(); // nothing to make durable: allowed
          expect(r.size).toBe(size);
          equalBytes(await r.read(0, data.length), data, 'unchanged');
        } finally {
          await r.close();
        }
      } finally {
        await env.cleanup();
      }
    });

    it('after flush, reopening gives the same bytes', async (ctx) => {
      const env = await setup();
      try {
        if (!env.reopen) return ctx.skip('no reopen in setup');
        const s = await env.open();
        const data = pattern(100_000, 14);
        await s.write(1234, data);
        await s.flush();
        const size = s.size;
        await s.close();
        const again = await env.reopen();
        try {
          expect(again.size).toBe(size);
          equalBytes(await again.read(1234, data.length), data, 'after reopen');
          if (again.resizable) expect(allBytes(await again.read(0, 1234), 0)).toBe(true);
        } finally {
          await again.close();
        }
      } finally {
        await env.cleanup();
      }
    });

    describe('resizable stores', () => {
      it('grows on a write past the end; the gap reads as zeros', (ctx) =>
        withStore(async (s) => {
          if (!s.resizable) return ctx.skip('fixed-size store');
          await s.write(0, pattern(10, 15));
          const tail = pattern(500, 16);
          await s.write(100_000, tail);
          expect(s.size).toBe(100_500);
          expect(allBytes(await s.read(10, 100_000 - 10), 0)).toBe(true);
          equalBytes(await s.read(100_000, 500), tail, 'tail');
        }));

      it('truncate shrinks, and regrowing reads zeros, not the old bytes', (ctx) =>
        withStore(async (s) => {
          if (!s.resizable) return ctx.skip('fixed-size store');
          const data = pattern(10_000, 17);
          await s.write(0, data);
          await s.truncate(3000);
          expect(s.size).toBe(3000);
          expect(await codeOf(() => s.read(2999, 2))).toBe('out-of-range');
          equalBytes(await s.read(0, 3000), data.subarray(0, 3000), 'kept part');
          await s.truncate(8000);
          expect(s.size).toBe(8000);
          expect(allBytes(await s.read(3000, 5000), 0)).toBe(true);
          await s.truncate(8000); // same size: no change
          expect(s.size).toBe(8000);
          await s.truncate(0);
          expect(s.size).toBe(0);
          await s.write(5, new Uint8Array([9]));
          equalBytes(await s.read(0, 6), new Uint8Array([0, 0, 0, 0, 0, 9]), 'after truncate to 0');
        }));

      it('writes at a 5 GiB offset without allocating the gap', async (ctx) => {
        const env = await setup();
        try {
          if (!env.largeOffsets) return ctx.skip('no largeOffsets capability');
          const s = await env.open();
          try {
            const data = pattern(4096, 18);
            const off = 5 * GIB + 123;
            await s.write(off, data);
            expect(s.size).toBe(off + data.length);
            equalBytes(await s.read(off, data.length), data, 'at 5 GiB');
            expect(allBytes(await s.read(4 * GIB, 65_536), 0)).toBe(true);
            await s.flush();
          } finally {
            await s.close();
          }
          if (env.reopen) {
            const again = await env.reopen();
            try {
              expect(again.size).toBe(5 * GIB + 123 + 4096);
              equalBytes(await again.read(5 * GIB + 123, 4096), pattern(4096, 18), 'at 5 GiB after reopen');
            } finally {
              await again.close();
            }
          }
        } finally {
          await env.cleanup();
        }
      });
    });

    describe('fixed-size stores', () => {
      it('refuses writes past the end with out-of-range and writes nothing', (ctx) =>
        withStore(async (s) => {
          if (s.resizable) return ctx.skip('resizable store');
          const size = s.size;
          const before = await s.read(size - 4096, 4096);
          expect(await codeOf(() => s.write(size - 100, new Uint8Array(200).fill(1)))).toBe('out-of-range');
          expect(await codeOf(() => s.write(size, new Uint8Array(1)))).toBe('out-of-range');
          expect(await codeOf(() => s.write(size + GIB, new Uint8Array(1)))).toBe('out-of-range');
          equalBytes(await s.read(size - 4096, 4096), before, 'end of device unchanged');
          // A write that ends exactly at the end is fine.
          const last = pattern(4096, 19);
          await s.write(size - 4096, last);
          equalBytes(await s.read(size - 4096, 4096), last, 'last block');
          expect(s.size).toBe(size);
        }));

      it('truncate to another size is unsupported; to its own size is a no-op', (ctx) =>
        withStore(async (s) => {
          if (s.resizable) return ctx.skip('resizable store');
          const size = s.size;
          expect(await codeOf(() => s.truncate(size - 512))).toBe('unsupported');
          expect(await codeOf(() => s.truncate(size + 512))).toBe('unsupported');
          expect(await codeOf(() => s.truncate(0))).toBe('unsupported');
          await s.truncate(size);
          expect(s.size).toBe(size);
        }));
    });
  });
}

/** Registers the StoreNamespace contract cases under `describe(label)`. */
export function namespaceConformance(label: string, setup: () => Promise<NamespaceSetup>): void {
  async function withNamespace(fn: (ns: StoreNamespace, env: NamespaceSetup) => Promise<void>): Promise<void> {
    const env = await setup();
    try {
      await fn(env.namespace, env);
    } finally {
      await env.cleanup();
    }
  }

  async function put(ns: StoreNamespace, name: string, data: Uint8Array): Promise<void> {
    const s = await ns.open(name, { create: true });
    try {
      await s.write(0, data);
      await s.flush();
    } finally {
      await s.close();
    }
  }

  async function get(ns: StoreNamespace, name: string): Promise<Uint8Array> {
    const s = await ns.open(name);
    try {
      return await s.read(0, s.size);
    } finally {
      await s.close();
    }
  }

  describe(`StoreNamespace conformance: ${label}`, () => {
    it('starts empty and writable', () =>
      withNamespace(async (ns) => {
        expect(ns.readOnly).toBe(false);
        expect(await ns.list()).toEqual([]);
        expect(await ns.exists('disk')).toBe(false);
      }));

    it('open of a missing name is not-found unless create is given', () =>
      withNamespace(async (ns) => {
        expect(await codeOf(() => ns.open('disk'))).toBe('not-found');
        expect(await ns.exists('disk')).toBe(false);
        const s = await ns.open('disk', { create: true });
        try {
          expect(s.size).toBe(0);
          expect(s.readOnly).toBe(false);
        } finally {
          await s.close();
        }
        expect(await ns.exists('disk')).toBe(true);
        expect(await ns.list()).toEqual(['disk']);
      }));

    it('open with create keeps an existing store as it is', () =>
      withNamespace(async (ns) => {
        const data = pattern(5000, 20);
        await put(ns, 'disk', data);
        const s = await ns.open('disk', { create: true });
        try {
          expect(s.size).toBe(data.length);
          equalBytes(await s.read(0, data.length), data, 'existing data');
        } finally {
          await s.close();
        }
      }));

    it('lists names sorted', () =>
      withNamespace(async (ns) => {
        const names = ['b', 'a.layer', 'C', '10', '9', 'a', 'a-1', 'a_1', 'Z.meta'];
        for (const n of names) await put(ns, n, new Uint8Array([1]));
        expect(await ns.list()).toEqual([...names].sort());
      }));

    it('delete removes a store; deleting a missing name is not an error', () =>
      withNamespace(async (ns) => {
        await put(ns, 'keep', new Uint8Array([1]));
        await put(ns, 'gone', new Uint8Array([2]));
        await ns.delete('gone');
        expect(await ns.exists('gone')).toBe(false);
        expect(await ns.list()).toEqual(['keep']);
        expect(await codeOf(() => ns.open('gone'))).toBe('not-found');
        await ns.delete('gone');
        await ns.delete('never-there');
        equalBytes(await get(ns, 'keep'), new Uint8Array([1]), 'other store intact');
        // The name can be used again and starts empty.
        const s = await ns.open('gone', { create: true });
        expect(s.size).toBe(0);
        await s.close();
      }));

    it('rejects names that are not plain store names with invalid-argument', () =>
      withNamespace(async (ns) => {
        const bad = ['', '.', '..', '../x', 'a/b', 'a\\b', '.hidden', '-x', 'a b', 'x'.repeat(129), 'é', 'a\0b'];
        for (const name of bad) {
          expect(await codeOf(() => ns.open(name, { create: true })), `open(${JSON.stringify(name)})`).toBe('invalid-argument');
        }
        expect(await ns.list()).toEqual([]);
        // The longest allowed name works.
        await put(ns, 'y'.repeat(128), new Uint8Array([1]));
        expect(await ns.list()).toEqual(['y'.repeat(128)]);
      }));

    it('open with readOnly gives a read-only store', () =>
      withNamespace(async (ns) => {
        await put(ns, 'disk', pattern(100, 21));
        const s = await ns.open('disk', { readOnly: true });
        try {
          expect(s.readOnly).toBe(true);
          expect(await codeOf(() => s.write(0, new Uint8Array([1])))).toBe('read-only');
          equalBytes(await s.read(0, 100), pattern(100, 21), 'read-only read');
        } finally {
          await s.close();
        }
      }));

    it('a reopened namespace sees the data and names', () =>
      withNamespace(async (ns, env) => {
        const data = pattern(70_000, 22);
        await put(ns, 'disk', data);
        await put(ns, 'meta', new Uint8Array([7]));
        await ns.delete('meta');
        await ns.sync();
        const again = env.reopen ? await env.reopen() : ns;
        expect(await again.list()).toEqual(['disk']);
        equalBytes(await get(again, 'disk'), data, 'after reopen');
      }));

    it('a read-only namespace opens stores read-only and refuses create and delete', async (ctx) => {
      const env = await setup();
      try {
        if (!env.readOnly) return ctx.skip('no readOnly in setup');
        await put(env.namespace, 'disk', pattern(10, 23));
        const ro = await env.readOnly();
        expect(ro.readOnly).toBe(true);
        expect(await codeOf(() => ro.open('new', { create: true }))).toBe('read-only');
        expect(await ro.exists('new')).toBe(false);
        expect(await codeOf(() => ro.delete('disk'))).toBe('read-only');
        expect(await ro.list()).toEqual(['disk']);
        const s = await ro.open('disk', { create: true });
        try {
          expect(s.readOnly).toBe(true);
          expect(await codeOf(() => s.write(0, new Uint8Array([1])))).toBe('read-only');
          expect(await codeOf(() => s.truncate(0))).toBe('read-only');
          equalBytes(await s.read(0, 10), pattern(10, 23), 'read through read-only namespace');
        } finally {
          await s.close();
        }
        await ro.sync();
      } finally {
        await env.cleanup();
      }
    });
  });
}

/** What a read-only backend (an HTTP image, a published chunk) gives the read-side suite. */
export interface ReadOnlyStoreSetup {
  /** Opens a store whose bytes are exactly `contents`. */
  open(): Promise<Store>;
  contents: Uint8Array;
  cleanup(): Promise<void>;
}

/**
 * The read side of the Store contract, for stores that cannot be written (HttpStore): the cases
 * of `storeConformance` that only read, run against known contents. What does not apply: every
 * case that writes, truncates, grows or reopens after a flush — such a store must refuse those
 * with `read-only`, which the last case checks.
 */
export function readOnlyStoreConformance(label: string, setup: () => Promise<ReadOnlyStoreSetup>): void {
  async function withStore(fn: (store: Store, bytes: Uint8Array) => Promise<void>): Promise<void> {
    const env = await setup();
    try {
      const store = await env.open();
      try {
        await fn(store, env.contents);
      } finally {
        await store.close();
      }
    } finally {
      await env.cleanup();
    }
  }

  describe(`Store conformance (read side): ${label}`, () => {
    it('reports its size and capabilities', () =>
      withStore(async (s, bytes) => {
        expect(s.readOnly).toBe(true);
        expect(s.resizable).toBe(false);
        expect(s.size).toBe(bytes.length);
      }));

    it('reads at offsets, including unaligned ones, and readInto fills exactly its view', () =>
      withStore(async (s, bytes) => {
        for (const [off, len] of [[0, bytes.length], [1, 511], [4095, 4097], [bytes.length - 1, 1], [12_345, 1]] as const) {
          equalBytes(await s.read(off, len), bytes.subarray(off, off + len), `read(${off}, ${len})`);
        }
        const big = new Uint8Array(3000).fill(0xee);
        await s.readInto(100, big.subarray(1000, 2000));
        expect(allBytes(big.subarray(0, 1000), 0xee) && allBytes(big.subarray(2000), 0xee)).toBe(true);
        equalBytes(big.subarray(1000, 2000), bytes.subarray(100, 1100), 'readInto view');
      }));

    it('matches the contents over 150 seeded random reads, some in flight together', () =>
      withStore(async (s, bytes) => {
        const rnd = prng(77);
        for (let round = 0; round < 15; round++) {
          const reads = Array.from({ length: 10 }, () => {
            const off = Math.floor(rnd() * bytes.length);
            const len = Math.floor(rnd() * Math.min(70_000, bytes.length - off));
            return [off, len] as const;
          });
          const got = await Promise.all(reads.map(([o, l]) => s.read(o, l)));
          got.forEach((g, i) => equalBytes(g, bytes.subarray(reads[i]![0], reads[i]![0] + reads[i]![1]), `random read ${round}.${i}`));
        }
      }));

    it('refuses reads past the end with out-of-range and reads nothing; zero-length reads work', () =>
      withStore(async (s) => {
        const size = s.size;
        for (const [off, len] of [[size, 1], [size - 10, 11], [size + 4096, 4096], [0, size + 1]] as const) {
          const target = new Uint8Array(len).fill(0xaa);
          expect(await codeOf(() => s.readInto(off, target)), `readInto(${off}, ${len})`).toBe('out-of-range');
          expect(allBytes(target, 0xaa)).toBe(true);
        }
        expect((await s.read(0, 0)).length).toBe(0);
        expect((await s.read(size, 0)).length).toBe(0);
      }));

    it('rejects invalid offsets and lengths with invalid-argument, before allocating', () =>
      withStore(async (s) => {
        for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
          expect(await codeOf(() => s.read(bad, 1)), `read(${bad})`).toBe('invalid-argument');
          expect(await codeOf(() => s.read(0, bad)), `read(0, ${bad})`).toBe('invalid-argument');
        }
        expect(await codeOf(() => s.read(0, 2 ** 40))).toBe('out-of-range');
      }));

    it('refuses write and truncate with read-only; flush is allowed; after close every call throws closed', () =>
      withStore(async (s) => {
        expect(await codeOf(() => s.write(0, new Uint8Array([1])))).toBe('read-only');
        expect(await codeOf(() => s.truncate(0))).toBe('read-only');
        await s.flush();
        await s.close();
        await s.close();
        expect(await codeOf(() => s.read(0, 1))).toBe('closed');
        expect(await codeOf(() => s.write(0, new Uint8Array(1)))).toBe('closed');
        expect(await codeOf(() => s.flush())).toBe('closed');
      }));
  });
}
