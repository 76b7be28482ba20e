import type { StoreNamespace } from '../../../src/store/store.js';
import { Volume, type WriteRange } from '../../../src/volume/volume.js';
import { isStrataError } from '../../../src/errors.js';
import { Rng } from '../helpers/random.js';
import { ConcurrentModel, type ModelWrite, type RoundRecord } from './concurrent-model.js';

/**
 * A seeded workload of concurrent writers against the public Volume API, checked against
 * ConcurrentModel (concurrent-model.ts) as it runs and, after a crash, by
 * verifyConcurrentRecovered.
 *
 * Each round issues 2-16 writes at once (whole blocks, partial blocks, writes straddling
 * blocks, two partial writes into one block, zero writes, writeZeroes, writeRanges), plus
 * sometimes flushes and reads among them. An operation may wait a few microtask turns before it
 * is issued, or wait for an earlier operation of the round to settle (a flush or read issued
 * after a write was acknowledged must see it; writes issued right behind an acknowledged flush
 * are where a flush that returned too early shows). The round ends when every operation has settled; the
 * live view is read back and checked. Sometimes a round also takes a snapshot among its writes:
 * it must hold a state of the round with every write acknowledged before it was asked for, and
 * once read back after the round it must never change. Between rounds: sometimes a snapshot
 * (checked to read what the live view read), sometimes a snapshot deletion (a layer merge).
 *
 * Everything is decided by the seed before it is issued, and the memory store resolves in
 * microtasks, so one seed makes the same sequence of store calls every run.
 */

export const CBS = 4096;
export const CBLOCKS = 16;
export const CSIZE = CBS * CBLOCKS;

type OpKind =
  | { kind: 'write'; offset: number; data: Uint8Array }
  | { kind: 'zeroes'; offset: number; length: number }
  | { kind: 'ranges'; ranges: WriteRange[]; data: Uint8Array }
  | { kind: 'read'; offset: number; length: number }
  | { kind: 'flush' }
  | { kind: 'snapshot' };

type Op = OpKind & {
  /** microtask turns to wait before issuing */
  delay: number;
  /** index of an earlier operation of the round to wait for (settled) before issuing */
  after?: number;
  /** the model's writes this op makes (one per range) */
  writes: ModelWrite[];
};

/**
 * What a snapshot holds: its bytes, or (taken during a round and not read back yet) a state of
 * that round with the writes acknowledged before it was asked for.
 */
export type SnapContent = Uint8Array | { round: RoundRecord; required: Set<ModelWrite> };

export interface SnapshotState {
  committed: Map<string, SnapContent>;
  /** a snapshot operation in progress: a creation (content) or a deletion (null) */
  pending: { name: string; content: SnapContent | null } | null;
}

export interface ConcurrentOutcome {
  model: ConcurrentModel;
  snaps: SnapshotState;
  crashed: boolean;
  /** false when the crash came before Volume.create returned */
  created: boolean;
  /** what stopped the run (the injected crash, or a bug) */
  error: string | null;
  /** violations of the model seen while running */
  problems: string[];
  /** counts, to show the workload did what it says */
  stats: Record<string, number>;
}

export interface ConcurrentOptions {
  rounds: number;
  /** close the volume at the end (default true); false leaves it open for a simulated power loss */
  close?: boolean;
}

/** A pattern unique to write `id` at each address: distinct writes of a round differ on every byte. */
function fill(id: number, offset: number, length: number): Uint8Array {
  const f = 1 + (id % 255);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const a = offset + i;
    out[i] = f ^ ((Math.imul(a, 0x9e3779b1) >>> 24) & 0xff);
  }
  return out;
}

/** Plans rounds from a seed; consumes the RNG only here, so a run's plan never depends on its results. */
class Planner {
  private rng: Rng;
  private ids = 0;

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  next(): number {
    return this.rng.next();
  }
  int(n: number): number {
    return this.rng.int(n);
  }
  pick<T>(xs: readonly T[]): T {
    return this.rng.pick(xs);
  }

  /** A write's bytes: a fill pattern, or (sometimes) zeros so the zero-block path runs too. */
  private bytes(offset: number, length: number): Uint8Array {
    return this.rng.next() < 0.08 ? new Uint8Array(length) : fill(this.ids++, offset, length);
  }

  private block(hot: number[]): number {
    return this.rng.next() < 0.7 ? this.rng.pick(hot) : this.rng.int(CBLOCKS);
  }

  /** One write-like op (or two, for a copy-up pair). */
  private writeOps(hot: number[]): OpKind[] {
    const r = this.rng.next();
    const b = this.block(hot);
    if (r < 0.28) {
      const n = Math.min(this.rng.pick([1, 1, 1, 2, 3]), CBLOCKS - b);
      return [{ kind: 'write', offset: b * CBS, data: this.bytes(b * CBS, n * CBS) }];
    }
    if (r < 0.5) {
      const within = this.rng.int(CBS);
      const len = Math.min(CBS - within, this.rng.pick([1, 7, 100, 512, 1000, CBS / 2, CBS - 1]));
      const off = b * CBS + within;
      return [{ kind: 'write', offset: off, data: this.bytes(off, len) }];
    }
    if (r < 0.64) {
      // straddles one or more block boundaries
      const start = Math.min(b, CBLOCKS - 2) * CBS + CBS - 1 - this.rng.int(CBS - 1);
      const len = Math.min(CSIZE - start, CBS - (start % CBS) + 1 + this.rng.int(CBS - 1) + (this.rng.next() < 0.3 ? CBS : 0));
      return [{ kind: 'write', offset: start, data: this.bytes(start, len) }];
    }
    if (r < 0.76) {
      // two partial writes into one block at disjoint bytes: both copy the block up
      const split = 1 + this.rng.int(CBS - 2);
      const a0 = this.rng.int(split);
      const b1 = split + 1 + this.rng.int(CBS - split);
      return [
        { kind: 'write', offset: b * CBS + a0, data: this.bytes(b * CBS + a0, split - a0) },
        { kind: 'write', offset: b * CBS + split, data: this.bytes(b * CBS + split, b1 - split) },
      ];
    }
    if (r < 0.86) {
      const shape = this.rng.int(3);
      const off = shape === 0 ? b * CBS : b * CBS + 1 + this.rng.int(CBS - 1);
      const len = Math.min(CSIZE - off, shape === 0 ? CBS * (1 + this.rng.int(2)) : shape === 1 ? 1 + this.rng.int(CBS - 1 - (off % CBS)) : CBS + this.rng.int(CBS));
      return [{ kind: 'zeroes', offset: off, length: Math.max(1, len) }];
    }
    // writeRanges: 2-3 ascending, non-overlapping ranges, block-aligned or not
    const aligned = this.rng.next() < 0.5;
    const ranges: WriteRange[] = [];
    let pos = b * CBS;
    for (let i = 0, n = 2 + this.rng.int(2); i < n; i++) {
      const off = aligned ? Math.ceil(pos / CBS) * CBS + this.rng.int(2) * CBS : pos + this.rng.int(CBS);
      const len = aligned ? CBS * (1 + this.rng.int(2)) : 1 + this.rng.int(2 * CBS);
      if (off + len > CSIZE) break;
      ranges.push({ offset: off, length: len });
      pos = off + len;
    }
    if (ranges.length === 0) return [{ kind: 'write', offset: b * CBS, data: this.bytes(b * CBS, CBS) }];
    const parts = ranges.map((x) => this.bytes(x.offset, x.length));
    const data = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      data.set(p, at);
      at += p.length;
    }
    return [{ kind: 'ranges', ranges, data }];
  }

  private delay(): number {
    return this.rng.next() < 0.6 ? 0 : 1 + this.rng.int(8);
  }

  round(): Op[] {
    const hot = Array.from({ length: 1 + this.rng.int(3) }, () => this.rng.int(CBLOCKS));
    const want = 2 + this.rng.int(15);
    const ops: Op[] = [];
    while (ops.length < want) for (const k of this.writeOps(hot)) ops.push({ ...k, delay: this.delay(), writes: [] });
    const extra: OpKind[] = [];
    if (this.rng.next() < 0.45) for (let i = 0, n = 1 + this.rng.int(3); i < n; i++) extra.push({ kind: 'flush' });
    if (this.rng.next() < 0.12) extra.push({ kind: 'snapshot' });
    if (this.rng.next() < 0.6) {
      for (let i = 0, n = 1 + this.rng.int(2); i < n; i++) {
        const whole = this.rng.next() < 0.5;
        const b = this.block(hot);
        const off = whole ? 0 : b * CBS + (this.rng.next() < 0.5 ? 0 : this.rng.int(CBS));
        const len = whole ? CSIZE : Math.min(CSIZE - off, 1 + this.rng.int(3 * CBS));
        extra.push({ kind: 'read', offset: off, length: len });
      }
    }
    for (const k of extra) {
      const at = this.rng.int(ops.length + 1);
      const after = at > 0 && this.rng.next() < 0.5 ? this.rng.int(at) : undefined;
      ops.splice(at, 0, { ...k, delay: this.delay(), after, writes: [] });
      // indices of later ops' `after` do not exist yet (extras get theirs at insertion, pointing earlier)
      for (let i = at + 1; i < ops.length; i++) if (ops[i]!.after !== undefined && ops[i]!.after! >= at) ops[i]!.after!++;
    }
    // some writes wait for a flush before them: writes right behind an acknowledged flush are
    // where a flush that returned too early (a missing await, a group commit joined late) shows
    let lastFlush = -1;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.kind === 'flush') lastFlush = i;
      else if (lastFlush >= 0 && op.kind !== 'read' && op.after === undefined && this.rng.next() < 0.4) op.after = lastFlush;
    }
    return ops;
  }
}

function describe(op: OpKind): string {
  switch (op.kind) {
    case 'write':
      return `write ${op.offset}+${op.data.length}`;
    case 'zeroes':
      return `writeZeroes ${op.offset}+${op.length}`;
    case 'ranges':
      return `writeRanges ${op.ranges.map((r) => `${r.offset}+${r.length}`).join(',')}`;
    case 'read':
      return `read ${op.offset}+${op.length}`;
    case 'flush':
      return 'flush';
    case 'snapshot':
      return 'snapshot';
  }
}

/** Run the seeded concurrent workload on `ns` until done or until the namespace "crashes". */
export async function runConcurrentWorkload(ns: StoreNamespace, seed: number, options: ConcurrentOptions): Promise<ConcurrentOutcome> {
  const plan = new Planner(seed);
  const model = new ConcurrentModel(CSIZE, CBS);
  const snaps: SnapshotState = { committed: new Map(), pending: null };
  const stats: Record<string, number> = { rounds: 0, writes: 0, zeroes: 0, ranges: 0, reads: 0, flushes: 0, chained: 0, snapshots: 0, roundSnapshots: 0, deletions: 0 };
  const out: ConcurrentOutcome = { model, snaps, crashed: false, created: false, error: null, problems: [], stats };
  let vol: Volume;
  try {
    // A tiny compaction threshold, so the sweep also crashes inside map compactions.
    vol = await Volume.create(ns, { size: CSIZE, blockSize: CBS, compactMapBytes: 2048 });
  } catch (e) {
    return { ...out, crashed: true, error: String(e) };
  }
  out.created = true;
  let names = 0;
  try {
    for (let round = 0; round < options.rounds; round++) {
      const ops = plan.round();
      const r = model.beginRound();
      for (const op of ops) {
        if (op.kind === 'write') op.writes.push(model.addWrite(op.offset, op.data, describe(op)));
        else if (op.kind === 'zeroes') op.writes.push(model.addWrite(op.offset, new Uint8Array(op.length), describe(op)));
        else if (op.kind === 'ranges') {
          let at = 0;
          for (const x of op.ranges) {
            op.writes.push(model.addWrite(x.offset, op.data.subarray(at, at + x.length), describe(op)));
            at += x.length;
          }
        }
      }
      const settled: Promise<void>[] = [];
      /** snapshots taken during this round, read back after it */
      const taken: string[] = [];
      const issue = async (op: Op, i: number): Promise<void> => {
        if (op.after !== undefined) {
          stats.chained!++;
          await settled[op.after]!.catch(() => {});
        }
        for (let t = 0; t < op.delay; t++) await null;
        switch (op.kind) {
          case 'write':
            stats.writes!++;
            await vol.write(op.offset, op.data);
            break;
          case 'zeroes':
            stats.zeroes!++;
            await vol.writeZeroes(op.offset, op.length);
            break;
          case 'ranges':
            stats.ranges!++;
            await vol.writeRanges(op.ranges, op.data);
            break;
          case 'read': {
            stats.reads!++;
            const required = model.ackedNow();
            const got = await vol.read(op.offset, op.length);
            const p = model.checkBlocks(got, op.offset, r, required, `op ${i} (${describe(op)}, after ${required.size} acknowledged writes)`);
            if (p) out.problems.push(p);
            break;
          }
          case 'flush': {
            stats.flushes!++;
            const captured = model.ackedNow();
            await vol.flush();
            model.flushAcked(captured);
            break;
          }
          case 'snapshot': {
            // names are handed out in issue order, which the seed fixes
            const name = `s${names++}`;
            const content: SnapContent = { round: r, required: model.ackedNow() };
            snaps.pending = { name, content };
            await vol.snapshot(name);
            snaps.committed.set(name, content);
            snaps.pending = null;
            // a snapshot is a durability point: what it holds survives, like a flush issued with it
            model.flushAcked(content.required);
            taken.push(name);
            stats.roundSnapshots!++;
            break;
          }
        }
        for (const w of op.writes) w.acked = true;
      };
      for (let i = 0; i < ops.length; i++) settled.push(issue(ops[i]!, i));
      const results = await Promise.allSettled(settled);
      const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed) throw failed.reason;
      for (const name of taken) {
        const content = snaps.committed.get(name)!;
        const got = await vol.openSnapshot(name).read(0, CSIZE);
        if (!(content instanceof Uint8Array)) {
          const p = model.checkBlocks(got, 0, content.round, content.required, `snapshot ${name} taken`);
          if (p) out.problems.push(p);
        }
        snaps.committed.set(name, got);
      }
      const back = await vol.read(0, CSIZE);
      const p = model.endRound(back);
      if (p) out.problems.push(p);
      stats.rounds!++;

      const between = plan.next();
      if (between < 0.1) {
        const name = `s${names++}`;
        snaps.pending = { name, content: model.live };
        await vol.snapshot(name);
        snaps.committed.set(name, model.live);
        snaps.pending = null;
        model.durableNow();
        stats.snapshots!++;
        const got = await vol.openSnapshot(name).read(0, CSIZE);
        if (!sameBytes(got, model.live)) out.problems.push(`snapshot ${name} does not read what the live view read when it was taken`);
      } else if (between < 0.14 && snaps.committed.size > 0) {
        const name = plan.pick([...snaps.committed.keys()].sort());
        snaps.pending = { name, content: null };
        await vol.deleteSnapshot(name);
        snaps.committed.delete(name);
        snaps.pending = null;
        stats.deletions!++;
      }
    }
    if (options.close ?? true) {
      await vol.close();
      model.durableNow();
    }
  } catch (e) {
    return { ...out, crashed: true, error: String(e) };
  }
  return out;
}

/**
 * After a crash, reopen the volume (read-only without repair, or writable with it) and check
 * it against the outcome: every block holds a state the model allows (acknowledged-flushed
 * writes present, nothing unwritten), the snapshot list is the committed one or the one being
 * committed, each snapshot reads exactly what it read when taken, and `check` finds nothing.
 */
export async function verifyConcurrentRecovered(ns: StoreNamespace, outcome: ConcurrentOutcome, writable: boolean): Promise<string | null> {
  let vol: Volume;
  try {
    vol = await Volume.open(ns, { readOnly: !writable });
  } catch (e) {
    // A creation that never completed may leave nothing, or a torn first manifest.
    if (!outcome.created && isStrataError(e) && (e.code === 'not-found' || e.code === 'corrupt')) return null;
    throw e;
  }
  const how = writable ? 'writable reopen' : 'read-only reopen';
  try {
    if (!outcome.created) return null;
    const live = await vol.read(0, CSIZE);
    const p = outcome.model.checkRecovered(live);
    if (p) return `${how}: live view: ${p}`;
    const { committed, pending } = outcome.snaps;
    const names = vol.snapshots().map((s) => s.name).sort();
    const before = [...committed.keys()].sort();
    const allowed = [before.join(',')];
    if (pending?.content) allowed.push([...before, pending.name].sort().join(','));
    if (pending && !pending.content) allowed.push(before.filter((n) => n !== pending.name).join(','));
    if (!allowed.includes(names.join(','))) return `${how}: snapshot list [${names.join(',')}] is not one of [${allowed.join('] or [')}]`;
    for (const name of names) {
      const want = committed.get(name) ?? pending?.content;
      const got = await vol.openSnapshot(name).read(0, CSIZE);
      if (!want) return `${how}: snapshot ${name} was never taken`;
      if (want instanceof Uint8Array) {
        if (!sameBytes(want, got)) return `${how}: snapshot ${name} changed`;
      } else {
        const p = outcome.model.checkBlocks(got, 0, want.round, want.required, `snapshot ${name} (taken during the round)`);
        if (p) return `${how}: ${p}`;
      }
    }
    const report = await vol.check();
    if (!report.ok) return `${how}: check failed: ${report.problems[0]!.message}`;
    return null;
  } finally {
    await vol.close();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
