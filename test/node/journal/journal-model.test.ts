import { describe, expect, it } from 'vitest';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { enableJournal, openJournaled } from '../../../src/journal/open.js';
import type { Journal } from '../../../src/journal/journal.js';
import { prng } from '../../../src/bench/prng.js';

/**
 * A reference model for the write log: seeded rounds of 1–8 concurrent writers (whole, partial,
 * straddling writes and write-zeroes on disjoint byte ranges, which may share blocks), flushes
 * and marks, against a byte array. Checked: the view at every mark taken with no write in
 * flight equals the model then; `latest` equals the live volume after a quiet flush; every
 * `seq:N` outside the concurrent rounds equals the model (sequential rounds give every record an
 * exact state); the same after close and reopen.
 */
const LONG = process.env.STRATADISK_LONG === '1';
const BS = 4096;
const BLOCKS = 16;
const SIZE = BS * BLOCKS;
const LENGTHS = [1, 17, 100, BS - 1, BS, BS + 7, 2 * BS, 2 * BS + 3, 3 * BS + 1];

interface Range {
  off: number;
  len: number;
}

function overlaps(a: Range, b: Range): boolean {
  return a.off < b.off + b.len && b.off < a.off + a.len;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}

async function runModel(seed: number, rounds: number): Promise<{ marks: number; seqs: number }> {
  const rnd = prng(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const bytes = (n: number): Uint8Array => {
    const b = new Uint8Array(n);
    const v = 1 + int(255);
    for (let i = 0; i < n; i++) b[i] = (v + i * 7) & 0xff;
    return b;
  };

  const ns = new MemoryNamespace();
  let vol = await Volume.create(ns, { size: SIZE, blockSize: BS });
  const model = new Uint8Array(SIZE);
  // some base content before the log starts
  for (let i = 0; i < 3; i++) {
    const len = pick(LENGTHS);
    const off = int(SIZE - len);
    const d = bytes(len);
    await vol.write(off, d);
    model.set(d, off);
  }
  let j: Journal = await enableJournal(vol, ns, '');
  const markModels = new Map<string, Uint8Array>();
  /** exact states: (log seq, model) in seq order; a state holds until the next one */
  const states: { seq: number; model: Uint8Array }[] = [{ seq: 0, model: model.slice() }];
  /** seq ranges (a, b] in which concurrent writers ran: no exact state there */
  const fuzzy: [number, number][] = [];
  /** sequential writes logged as several records: (a, b) holds each block either before or after */
  const torn: { a: number; b: number; pre: Uint8Array; post: Uint8Array }[] = [];
  let markNo = 0;

  const op = async (r: Range): Promise<void> => {
    if (rnd() < 0.15) {
      await vol.writeZeroes(r.off, r.len);
      model.fill(0, r.off, r.off + r.len);
    } else {
      const d = bytes(r.len);
      await vol.write(r.off, d);
      model.set(d, r.off);
    }
  };
  const randomRange = (): Range => {
    const len = pick(LENGTHS);
    // aligned now and then, so whole-block writes are common
    const off = rnd() < 0.3 ? int(BLOCKS - Math.ceil(len / BS) + 1) * BS : int(SIZE - len + 1);
    return { off, len: Math.min(len, SIZE - off) };
  };
  const checkLatest = async (where: string): Promise<void> => {
    const live = await vol.read(0, SIZE);
    const latest = await j.view('latest').read(0, SIZE);
    expect(firstDiff(latest, live), `${where}: view at latest vs live volume`).toBe(-1);
    expect(same(live, model), `${where}: live volume vs model`).toBe(true);
  };

  for (let round = 0; round < rounds; round++) {
    const writers = 1 + int(8);
    if (writers === 1 || rnd() < 0.3) {
      // sequential: every write record has an exact state
      const n = 1 + int(4);
      for (let i = 0; i < n; i++) {
        const before = j.status().lastSeq;
        const pre = model.slice();
        await op(randomRange());
        const after = j.status().lastSeq;
        // a write is logged as one record per part (head, whole blocks, tail): a seq between
        // them shows the write done up to a block boundary
        if (after - before > 1) torn.push({ a: before, b: after, pre, post: model.slice() });
        states.push({ seq: after, model: model.slice() });
        if (rnd() < 0.2) await vol.flush();
      }
    } else {
      const before = j.status().lastSeq;
      const taken: Range[] = [];
      const plans: Range[][] = [];
      for (let w = 0; w < writers; w++) {
        const mine: Range[] = [];
        for (let k = 0; k < 1 + int(3); k++) {
          for (let tries = 0; tries < 10; tries++) {
            const r = randomRange();
            if (!taken.some((t) => overlaps(t, r))) {
              taken.push(r);
              mine.push(r);
              break;
            }
          }
        }
        plans.push(mine);
      }
      await Promise.all(
        plans.map(async (mine, w) => {
          for (const r of mine) {
            await op(r);
            if (rnd() < 0.15) await vol.flush();
            // a mark with writes in flight: made, but its state is not checked
            if (rnd() < 0.03) await j.mark(`busy-${round}-${w}`);
          }
        }),
      );
      const after = j.status().lastSeq;
      fuzzy.push([before, after]);
      states.push({ seq: after, model: model.slice() });
    }
    const r = rnd();
    if (r < 0.25) {
      await vol.flush();
      await checkLatest(`seed ${seed} round ${round} flush`);
    } else if (r < 0.45) {
      const label = `m${markNo++}`;
      const m = await j.mark(label);
      markModels.set(label, model.slice());
      const got = await j.view(`mark:${label}`).read(0, SIZE);
      expect(firstDiff(got, model), `seed ${seed} round ${round}: mark ${label} right after marking`).toBe(-1);
      await checkLatest(`seed ${seed} round ${round} mark`);
    }
  }
  await vol.flush();

  const stateAt = (seq: number): Uint8Array | null => {
    if (fuzzy.some(([a, b]) => seq > a && seq < b)) return null;
    let lo = 0;
    for (let i = 0; i < states.length; i++) if (states[i]!.seq <= seq) lo = i;
    return states[lo]!.model;
  };
  let seqsChecked = 0;
  const checkAll = async (where: string): Promise<void> => {
    for (const [label, m] of markModels) {
      const got = await j.view(`mark:${label}`).read(0, SIZE);
      expect(firstDiff(got, m), `${where}: view at mark ${label}`).toBe(-1);
    }
    await checkLatest(where);
    const last = j.status().lastFlush;
    const prngSeq = prng(seed ^ 0x5eed);
    for (let i = 0; i < 40; i++) {
      const seq = Math.floor(prngSeq() * (last + 1));
      const t = torn.find((x) => seq > x.a && seq < x.b);
      if (t) {
        const got = await j.view(`seq:${seq}`).read(0, SIZE);
        for (let b = 0; b < BLOCKS; b++) {
          const g = got.subarray(b * BS, (b + 1) * BS);
          const ok = same(g, t.pre.subarray(b * BS, (b + 1) * BS)) || same(g, t.post.subarray(b * BS, (b + 1) * BS));
          expect(ok, `${where}: view at seq:${seq} (inside one write), block ${b} is neither before nor after it`).toBe(true);
        }
        seqsChecked++;
        continue;
      }
      const want = stateAt(seq);
      if (!want) continue;
      // a partial read too, at a random place
      const got = await j.view(`seq:${seq}`).read(0, SIZE);
      expect(firstDiff(got, want), `${where}: view at seq:${seq}`).toBe(-1);
      const off = Math.floor(prngSeq() * SIZE);
      const len = Math.min(SIZE - off, 1 + Math.floor(prngSeq() * 3 * BS));
      expect(same(await j.view(`seq:${seq}`).read(off, len), want.subarray(off, off + len)), `${where}: seq:${seq} ${off}+${len}`).toBe(true);
      seqsChecked++;
    }
  };
  await checkAll(`seed ${seed} before close`);
  await vol.close();
  const reopened = await openJournaled(ns);
  vol = reopened.volume;
  j = reopened.journal!;
  expect(j.status().recovered).toBeNull();
  await checkAll(`seed ${seed} after reopen`);
  await vol.close();
  return { marks: markModels.size, seqs: seqsChecked };
}

describe('write log against a reference model', () => {
  const seeds = LONG ? Array.from({ length: 60 }, (_, i) => 1000 + i) : [1, 2, 3, 4];
  const rounds = LONG ? 200 : 40;
  for (const seed of seeds) {
    it(`seed ${seed}: ${rounds} rounds of 1–8 writers; marks, seqs and latest read the model`, async () => {
      const { marks, seqs } = await runModel(seed, rounds);
      expect(marks).toBeGreaterThan(0);
      expect(seqs).toBeGreaterThan(0);
    }, 600_000);
  }
});
