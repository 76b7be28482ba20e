/**
 * What a volume may hold while many writes run at once, and after a crash.
 *
 * The workload (concurrent-workload.ts) runs in rounds: all operations of a round are issued
 * together and the round ends when every one has settled. Between rounds the live view is read
 * back and becomes definite (`live`), so overlapping writes of one round, which may land in
 * either order, are resolved by what the volume shows.
 *
 * The property checked, per block (the unit a volume writes atomically):
 *   a block's content must equal its content at the start of some round, overlaid by SOME
 *   subset of that round's writes applied in SOME order, where the subset includes every write
 *   that had been acknowledged before the observation was issued (a read, or the flush whose
 *   durability is being checked).
 * This rules out half-applied writes (a write must match on every byte it was not overwritten
 * on), lost copy-ups (a partial write missing beside another partial write of the same block),
 * shifted or foreign bytes, and acknowledged writes missing after a read or an acknowledged
 * flush. It allows what a disk may do: concurrent writes land in any order, and writes not yet
 * covered by an acknowledged flush may or may not survive a crash.
 */

export interface ModelWrite {
  /** unique over the run, for messages */
  id: number;
  /** what the operation was, for messages */
  what: string;
  offset: number;
  /** the bytes this write puts at [offset, offset + data.length) (zeros for writeZeroes) */
  data: Uint8Array;
  acked: boolean;
}

/** One round since the durability floor. */
export interface RoundRecord {
  index: number;
  /** the live view when the round started */
  base: Uint8Array;
  writes: ModelWrite[];
  /** writes of this round that an acknowledged flush guarantees (only for the floor round) */
  required: Set<ModelWrite>;
}

export class ConcurrentModel {
  /** the live view after the last completed round (read back, so definite) */
  live: Uint8Array;
  /**
   * Rounds since the durability floor, oldest first. Empty: `live` itself is durable. Else the
   * first round started from the durable base, and its `required` writes are durable too.
   */
  rounds: RoundRecord[] = [];
  current: RoundRecord | null = null;
  private nextId = 0;
  private roundCount = 0;

  constructor(readonly size: number, readonly blockSize: number) {
    this.live = new Uint8Array(size);
  }

  beginRound(): RoundRecord {
    const r: RoundRecord = { index: this.roundCount++, base: this.live, writes: [], required: new Set() };
    this.rounds.push(r);
    this.current = r;
    return r;
  }

  addWrite(offset: number, data: Uint8Array, what: string): ModelWrite {
    const w: ModelWrite = { id: this.nextId++, what, offset, data, acked: false };
    this.current!.writes.push(w);
    return w;
  }

  /** The writes of the current round acknowledged so far (what a read or flush issued now must see). */
  ackedNow(): Set<ModelWrite> {
    return new Set(this.current ? this.current.writes.filter((w) => w.acked) : []);
  }

  /** A flush issued when `captured` were the acknowledged writes of the current round has been acknowledged. */
  flushAcked(captured: Set<ModelWrite>): void {
    const cur = this.current!;
    if (this.rounds[0] !== cur) {
      this.rounds = [cur];
      cur.required = new Set(captured);
    } else {
      for (const w of captured) cur.required.add(w);
    }
  }

  /** A durability point between rounds (a snapshot, a close) completed: the live view is durable. */
  durableNow(): void {
    this.rounds = [];
  }

  /**
   * End the round with the live view read back. Every write of the round was acknowledged, so
   * each block must be explained with all of them present; returns a problem or null.
   */
  endRound(readBack: Uint8Array): string | null {
    const r = this.current!;
    this.current = null;
    const problem = this.checkBlocks(readBack, 0, r, new Set(r.writes), 'read back after the round');
    this.live = readBack;
    return problem;
  }

  /**
   * Check data read at `offset` (during or after round `r`) against the round: every block it
   * touches must be explained by r's base and writes, with `required` present.
   */
  checkBlocks(data: Uint8Array, offset: number, r: RoundRecord, required: Set<ModelWrite>, label: string): string | null {
    const bs = this.blockSize;
    const end = offset + data.length;
    for (let lo = offset; lo < end; ) {
      const hi = Math.min(end, (Math.floor(lo / bs) + 1) * bs);
      const p = explain(data, offset, lo, hi, r.base, r.writes, required);
      if (p) return `${label} in round ${r.index}, block ${Math.floor(lo / bs)}: ${p}`;
      lo = hi;
    }
    return null;
  }

  /**
   * After a crash: `live` is the recovered live view. Each block must be explained by some round
   * since the durability floor (the floor round with its required writes; later rounds with none
   * required), or equal the durable view when no round started since.
   */
  checkRecovered(live: Uint8Array): string | null {
    const bs = this.blockSize;
    for (let lo = 0; lo < this.size; lo += bs) {
      const hi = Math.min(this.size, lo + bs);
      if (this.rounds.length === 0) {
        const p = explain(live, 0, lo, hi, this.live, [], new Set());
        if (p) return `block ${lo / bs} is not the durable content: ${p}`;
        continue;
      }
      let first: string | null = null;
      let ok = false;
      for (let i = 0; i < this.rounds.length && !ok; i++) {
        const r = this.rounds[i]!;
        const p = explain(live, 0, lo, hi, r.base, r.writes, i === 0 ? r.required : new Set());
        if (p === null) ok = true;
        else first ??= p;
      }
      if (!ok) return `block ${lo / bs} matches no state since the last acknowledged flush (rounds ${this.rounds[0]!.index}..${this.rounds.at(-1)!.index}); against the first: ${first}`;
    }
    return null;
  }
}

/**
 * Can `c` (the bytes at [lo, hi) of `data`, which starts at absolute offset `at`; [lo, hi) lies
 * within one block) be produced from `base` by applying some subset of `writes` in some order,
 * with every write in `required` included? Returns null if so, else what is wrong.
 *
 * Greedy peeling decides it exactly: a write that matches `c` on all its bytes not yet
 * explained can be the last one applied among those left; peeling it only frees others, so
 * peeling to a fixed point explains the most bytes possible. Then every required write must be
 * peeled, and every byte left unexplained must be the base's.
 */
export function explain(
  data: Uint8Array,
  at: number,
  lo: number,
  hi: number,
  base: Uint8Array,
  writes: readonly ModelWrite[],
  required: ReadonlySet<ModelWrite>,
): string | null {
  const explained = new Uint8Array(hi - lo);
  const cands = writes.filter((w) => w.offset < hi && w.offset + w.data.length > lo);
  const peeled = new Set<ModelWrite>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const w of cands) {
      if (peeled.has(w)) continue;
      const from = Math.max(lo, w.offset);
      const to = Math.min(hi, w.offset + w.data.length);
      let matches = true;
      for (let b = from; b < to; b++) {
        if (!explained[b - lo] && data[b - at] !== w.data[b - w.offset]) {
          matches = false;
          break;
        }
      }
      if (!matches) continue;
      for (let b = from; b < to; b++) explained[b - lo] = 1;
      peeled.add(w);
      changed = true;
    }
  }
  for (const w of cands) {
    if (required.has(w) && !peeled.has(w)) {
      const from = Math.max(lo, w.offset);
      const to = Math.min(hi, w.offset + w.data.length);
      let b = from;
      while (b < to && data[b - at] === w.data[b - w.offset]) b++;
      return `acknowledged write #${w.id} (${w.what}) is missing: byte ${b} holds ${data[b - at]}, it wrote ${w.data[b - w.offset]}`;
    }
  }
  for (let b = lo; b < hi; b++) {
    if (!explained[b - lo] && data[b - at] !== base[b]) {
      const touching = cands.filter((w) => b >= w.offset && b < w.offset + w.data.length).map((w) => `#${w.id} (${w.what}) ${w.data[b - w.offset]}`);
      return `byte ${b} holds ${data[b - at]}: not the ${base[b]} before the round, and no order of the round's writes gives it (writes there: ${touching.join(', ') || 'none'})`;
    }
  }
  return null;
}
