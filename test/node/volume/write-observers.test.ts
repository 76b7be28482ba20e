/**
 * Write observers (src/volume/write-observer.ts): several at once see every write and flush in
 * order with the right bytes; a sync observer holds the write, an async one does not; attach and
 * detach mid-stream lose nothing handed over; failures detach or freeze, as the observer chose.
 */
import { describe, expect, it } from 'vitest';
import { consolidate } from '../../../src/jobs/consolidate.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import type { VolumeEvent, WriteEvent, WriteObserver } from '../../../src/volume/write-observer.js';
import { firstDiff, Rng } from '../helpers/random.js';
import { buildChain, randomWrite } from '../jobs/consolidate-helpers.js';

const BS = 4096;
const BLOCKS = 64;
const SIZE = BS * BLOCKS;

/** A promise with its resolve/reject outside. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => ((resolve = a), (reject = b)));
  return { promise, resolve, reject };
}

/** Let every pending callback and I/O of the memory stores run (a few macrotask turns). */
async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

/** Where the byte at volume offset `at` sits in `e.data` (through `e.runs`). */
function dataIndexOf(e: WriteEvent, at: number): number {
  let pos = 0;
  for (let r = 0; r < e.runs.length; r += 2) {
    const start = e.runs[r]! * BS;
    const len = e.runs[r + 1]! * BS;
    if (at >= start && at < start + len) return pos + (at - start);
    pos += len;
  }
  throw new Error(`offset ${at} is outside the event's runs`);
}

/** An observer that replays what it sees twice: whole blocks (as a mirror) and only the caller's ranges (as a write log). */
class Recorder implements WriteObserver {
  readonly events: VolumeEvent[] = [];
  readonly blocks = new Uint8Array(SIZE);
  readonly ranges = new Uint8Array(SIZE);
  constructor(
    readonly mode: 'sync' | 'async',
    start?: Uint8Array,
  ) {
    if (start) {
      this.blocks.set(start);
      this.ranges.set(start);
    }
  }
  observe(e: VolumeEvent): void {
    this.events.push(e.type === 'write' ? { ...e, data: e.data.slice() } : e);
    if (e.type !== 'write') return;
    for (let r = 0, pos = 0; r < e.runs.length; r += 2) {
      const len = e.runs[r + 1]! * BS;
      this.blocks.set(e.data.subarray(pos, pos + len), e.runs[r]! * BS);
      pos += len;
    }
    for (const r of e.ranges) {
      const i = dataIndexOf(e, r.offset);
      const bytes = e.data.subarray(i, i + r.length);
      if (e.kind === 'zero') expect(bytes.every((x) => x === 0)).toBe(true);
      this.ranges.set(bytes, r.offset);
    }
  }
  seqs(): number[] {
    return this.events.map((e) => e.seq);
  }
}

async function newVolume(): Promise<Volume> {
  return Volume.create(new MemoryNamespace(), { size: SIZE, blockSize: BS });
}

describe('write observers', () => {
  it('a sync and an async observer see every write and flush in order, with the right bytes, under a random workload', async () => {
    for (const seed of [1, 2, 3]) {
      const rng = new Rng(seed);
      const vol = await newVolume();
      const model = new Uint8Array(SIZE);
      const sync = new Recorder('sync');
      const async = new Recorder('async');
      const hs = vol.observe(sync);
      const ha = vol.observe(async);
      let flushes = 0;
      for (let step = 0; step < 300; step++) {
        const r = rng.next();
        if (r < 0.5) {
          // a few writes at once: they are applied (and observed) one at a time, in some order
          const n = 1 + rng.int(3);
          const ws: Promise<void>[] = [];
          for (let k = 0; k < n; k++) {
            const len = rng.pick([1, 100, BS - 1, BS, BS + 7, 2 * BS, 5 * BS + 3]);
            const off = rng.pick([0, BS]) === 0 ? rng.int(SIZE - len) : rng.int(BLOCKS - Math.ceil(len / BS)) * BS;
            const data = rng.next() < 0.15 ? new Uint8Array(len) : rng.bytes(len);
            ws.push(vol.write(off, data));
          }
          await Promise.all(ws);
        } else if (r < 0.65) {
          const len = rng.pick([1, 300, BS, 3 * BS + 5]);
          await vol.writeZeroes(rng.int(SIZE - len), len);
        } else if (r < 0.8) {
          const a = rng.int(BLOCKS / 2 - 2) * BS;
          const b = a + 2 * BS + rng.int(BLOCKS / 2) * BS;
          const data = rng.bytes(3 * BS);
          await vol.writeRanges([{ offset: a, length: 2 * BS }, { offset: b, length: BS }], data);
        } else {
          await vol.flush();
          flushes++;
        }
        // the model is the volume as read back after each step
      }
      await vol.readInto(0, model);
      await ha.idle();
      // order: one sequence, no gaps, the same for both
      const seqs = sync.seqs();
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      expect(async.seqs()).toEqual(seqs);
      expect(sync.events.filter((e) => e.type === 'flush').length).toBe(flushes);
      // bytes: replaying whole blocks, or only the ranges the callers wrote, gives the volume
      for (const rec of [sync, async]) {
        expect(firstDiff(rec.blocks, model)).toBe(-1);
        expect(firstDiff(rec.ranges, model)).toBe(-1);
      }
      expect(hs.attached && ha.attached).toBe(true);
      await vol.close();
      expect(hs.attached || ha.attached).toBe(false);
      // close flushed: the last event both saw is that flush
      expect(sync.events.at(-1)!.type).toBe('flush');
      await ha.idle();
      expect(async.events.at(-1)!.type).toBe('flush');
    }
  });

  it('a slow sync observer holds the write (and the flush) until it accepts; an async one does not', async () => {
    const vol = await newVolume();
    let gate = deferred();
    const called = deferred<VolumeEvent>();
    vol.observe({
      mode: 'sync',
      observe: (e) => {
        called.resolve(e);
        return gate.promise;
      },
    });
    const asyncGate = deferred();
    const ha = vol.observe({ mode: 'async', observe: () => asyncGate.promise });
    let done = false;
    const w = vol.write(10, new Uint8Array([1, 2, 3])).then(() => (done = true));
    expect((await called.promise).seq).toBe(1);
    await settle();
    expect(done).toBe(false);
    gate.resolve();
    await w;
    expect(done).toBe(true);
    // the async observer has not accepted it yet, and the write did not wait for it
    let idle = false;
    void ha.idle().then(() => (idle = true));
    await settle();
    expect(idle).toBe(false);
    // a flush is held the same way
    gate = deferred();
    let flushed = false;
    const f = vol.flush().then(() => (flushed = true));
    await settle();
    expect(flushed).toBe(false);
    gate.resolve();
    await f;
    asyncGate.resolve();
    await ha.idle();
    await vol.close();
  });

  it('an observer attached mid-stream sees only later writes', async () => {
    const vol = await newVolume();
    await vol.write(0, new Uint8Array(BS).fill(1));
    await vol.write(BS, new Uint8Array(BS).fill(2));
    const rec = new Recorder('sync');
    const h = vol.observe(rec);
    await vol.write(2 * BS, new Uint8Array(BS).fill(3));
    expect(rec.events.length).toBe(1);
    const e = rec.events[0] as WriteEvent;
    expect(e.seq).toBe(1); // the first event since observers came: writes before had none
    expect(e.ranges).toEqual([{ offset: 2 * BS, length: BS }]);
    expect(h.lastSeq).toBe(1);
    await vol.close();
  });

  it('a detach during in-flight writes loses nothing already handed over and stops at once', async () => {
    const vol = await newVolume();
    const gates: ReturnType<typeof deferred<void>>[] = [];
    const seen: number[] = [];
    const h = vol.observe({
      mode: 'async',
      observe: (e) => {
        seen.push(e.seq);
        const g = deferred();
        gates.push(g);
        return g.promise;
      },
    });
    for (let i = 0; i < 5; i++) await vol.write(i * BS, new Uint8Array(BS).fill(i + 1));
    // handed over: 5 events, the observer is working on the first
    await settle();
    expect(seen).toEqual([1]);
    let detached = false;
    const d = h.detach().then(() => (detached = true));
    expect(h.attached).toBe(false);
    await vol.write(9 * BS, new Uint8Array(BS).fill(9)); // after the detach: not handed over
    for (let i = 0; i < 5; i++) {
      await settle();
      expect(detached).toBe(false);
      gates[i]!.resolve();
    }
    await d;
    expect(seen).toEqual([1, 2, 3, 4, 5]);

    // a sync observer detached while it holds a write: the write completes when it accepts
    const g = deferred();
    const called = deferred();
    const hs = vol.observe({ mode: 'sync', observe: () => (called.resolve(), g.promise) });
    const w = vol.write(0, new Uint8Array(7));
    await called.promise;
    let sDetached = false;
    const sd = hs.detach().then(() => (sDetached = true));
    await settle();
    expect(sDetached).toBe(false);
    g.resolve();
    await w;
    await sd;
    await vol.close();
  });

  it("a failing observer never fails the write: 'detach' drops it and keeps the error", async () => {
    const vol = await newVolume();
    const boom = new Error('link down');
    let calls = 0;
    const bad = vol.observe({
      mode: 'sync',
      observe: (e) => {
        calls++;
        if (e.seq === 2) throw boom;
      },
    });
    const good = new Recorder('sync');
    vol.observe(good);
    await vol.write(0, new Uint8Array([1]));
    await vol.write(BS, new Uint8Array([2])); // its observer fails here: the write succeeds
    await vol.write(2 * BS, new Uint8Array([3]));
    expect(bad.attached).toBe(false);
    expect(bad.error).toBe(boom);
    expect(bad.failedSeq).toBe(2);
    expect(calls).toBe(2);
    expect(good.seqs()).toEqual([1, 2, 3]);
    expect(Array.from(await vol.read(BS, 1))).toEqual([2]);
    // an async observer that rejects: the same
    const abad = vol.observe({ mode: 'async', observe: () => Promise.reject(boom) });
    await vol.write(0, new Uint8Array([4]));
    await abad.idle();
    expect(abad.attached).toBe(false);
    expect(abad.failedSeq).toBe(4);
    await vol.close();
  });

  it("'freeze': the failed write and every later write and flush are held (reads go on) until the owner detaches it", async () => {
    const vol = await newVolume();
    const h = vol.observe({
      mode: 'sync',
      onFailure: 'freeze',
      observe: (e) => {
        if (e.seq === 2) throw new Error('secondary unreachable');
      },
    });
    await vol.write(0, new Uint8Array([1]));
    const state = { w2: false, w3: false, f: false };
    const w2 = vol.write(BS, new Uint8Array([2])).then(() => (state.w2 = true));
    await settle();
    expect(h.failedSeq).toBe(2);
    const w3 = vol.write(2 * BS, new Uint8Array([3])).then(() => (state.w3 = true));
    const f = vol.flush().then(() => (state.f = true));
    await settle();
    expect(state).toEqual({ w2: false, w3: false, f: false });
    // the held write is applied (reads see it); the later one has not started
    expect(Array.from(await vol.read(BS, 1))).toEqual([2]);
    expect(Array.from(await vol.read(2 * BS, 1))).toEqual([0]);
    await h.detach();
    await Promise.all([w2, w3, f]);
    expect(state).toEqual({ w2: true, w3: true, f: true });
    expect(Array.from(await vol.read(2 * BS, 1))).toEqual([3]);
    await vol.close();
  });

  it("run beside a consolidation's write mirror (one observer among several) and see every write, before and after its switch-over", async () => {
    for (const direction of ['down', 'up'] as const) {
      const rng = new Rng(direction === 'down' ? 5 : 6);
      const { vol, model } = await buildChain(new MemoryNamespace(), rng);
      const sync = new Recorder('sync', model.live);
      const async = new Recorder('async', model.live);
      vol.observe(sync);
      const ha = vol.observe(async);
      // foreground: 'ignore': the writer below never leaves the microtask queue (memory stores), so a
      // job yielding to it would sleep on a timer that never fires while the writer runs forever
      const job = consolidate(vol, { op: 'delete-snapshot', name: 's2' }, { direction, batchBytes: 2 * BS, foreground: 'ignore' });
      let finished = false;
      const end = job.done.finally(() => (finished = true));
      let writes = 0;
      while (!finished) {
        await randomWrite(vol, model, rng, 500 + writes);
        if (++writes % 5 === 0) await vol.flush();
      }
      await end;
      expect(job.state).toBe('completed');
      for (let i = 0; i < 5; i++) await randomWrite(vol, model, rng, 900 + i);
      await ha.idle();
      expect(firstDiff(await vol.read(0, SIZE), model.live)).toBe(-1);
      for (const rec of [sync, async]) {
        expect(firstDiff(rec.blocks, model.live)).toBe(-1);
        expect(firstDiff(rec.ranges, model.live)).toBe(-1);
      }
      expect(async.seqs()).toEqual(sync.seqs());
      await vol.close();
    }
  });

  it('refuses revert while an observer is attached (it would change the live view unseen)', async () => {
    const vol = await newVolume();
    await vol.snapshot('s');
    const h = vol.observe({ mode: 'async', observe: () => {} });
    await expect(vol.revert('s')).rejects.toMatchObject({ code: 'locked' });
    await h.detach();
    await vol.revert('s');
    await vol.close();
  });

  it('an observer on a read-only volume is refused', async () => {
    const ns = new MemoryNamespace();
    await (await Volume.create(ns, { size: SIZE, blockSize: BS })).close();
    const ro = await Volume.open(ns, { readOnly: true });
    expect(() => ro.observe({ mode: 'sync', observe: () => {} })).toThrow(expect.objectContaining({ code: 'read-only' }));
    await ro.close();
  });
});
