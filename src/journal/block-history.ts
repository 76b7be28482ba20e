/**
 * The index of the write log: for every block, the pieces of it the log holds, in log order.
 * A view at log seq S finds a block's last piece at or before S by binary search, then walks
 * back to the last piece that covers the whole block (or to the base snapshot); the writer keeps
 * that walk short by logging a whole block once a block has {@link MAX_PARTIALS} partial pieces
 * in a row (journal.ts). So a read at any point costs O(log n) in the log's length plus a
 * bounded number of piece reads, never a replay.
 *
 * Pieces live in flat typed arrays (no object per piece): 10^6 pieces take about 50 MB.
 */
export const MAX_PARTIALS = 8;

export const FLAG_WHOLE = 1;
export const FLAG_ZERO = 2;
export const FLAG_VOID = 4;

export interface PieceRef {
  seq: number;
  segment: number;
  /** where its bytes are in the segment (unused for zero pieces) */
  pos: number;
  /** offset of the piece inside its block */
  start: number;
  length: number;
  flags: number;
  hash: Uint8Array;
}

export class BlockHistory {
  private seq = new Float64Array(1024);
  private seg = new Uint32Array(1024);
  private pos = new Float64Array(1024);
  private start = new Uint32Array(1024);
  private len = new Uint32Array(1024);
  private flags = new Uint8Array(1024);
  private blockOf = new Float64Array(1024);
  private hashes = new Uint8Array(1024 * 16);
  private count = 0;
  /** block -> indices of its pieces, in log order */
  private readonly blocks = new Map<number, number[]>();
  /** records with pieces, in log order: seq and first piece (pieces of a record are contiguous) */
  private recSeq: number[] = [];
  private recFirst: number[] = [];

  constructor(readonly blockSize: number) {}

  get pieces(): number {
    return this.count;
  }

  get blockCount(): number {
    return this.blocks.size;
  }

  /** Start the pieces of record `seq` (call before its add()s). */
  beginRecord(seq: number): void {
    this.recSeq.push(seq);
    this.recFirst.push(this.count);
  }

  add(block: number, seq: number, segment: number, pos: number, start: number, length: number, flags: number, hash: Uint8Array | null): void {
    if (this.count === this.seq.length) this.grow();
    const i = this.count++;
    this.seq[i] = seq;
    this.seg[i] = segment;
    this.pos[i] = pos;
    this.start[i] = start;
    this.len[i] = length;
    this.flags[i] = flags;
    this.blockOf[i] = block;
    if (hash) this.hashes.set(hash, i * 16);
    else this.hashes.fill(0, i * 16, i * 16 + 16);
    let list = this.blocks.get(block);
    if (!list) this.blocks.set(block, (list = []));
    list.push(i);
  }

  /** Record `seq` did not happen (the volume failed to store it): views skip its pieces. */
  voidRecord(seq: number): void {
    const r = lastAtOrBefore(this.recSeq, seq);
    if (r < 0 || this.recSeq[r] !== seq) return;
    const to = r + 1 < this.recFirst.length ? this.recFirst[r + 1]! : this.count;
    for (let i = this.recFirst[r]!; i < to; i++) this.flags[i]! |= FLAG_VOID;
  }

  /**
   * The pieces a view at `atSeq` applies to `block`, oldest first: a whole piece (or none, then
   * the base is below) and the partial ones after it. Empty: the block is as in the base.
   */
  piecesAt(block: number, atSeq: number): PieceRef[] {
    const list = this.blocks.get(block);
    if (!list) return [];
    let k = lastIndexAtOrBefore(list, this.seq, atSeq);
    const out: PieceRef[] = [];
    for (; k >= 0; k--) {
      const i = list[k]!;
      const f = this.flags[i]!;
      if (f & FLAG_VOID) continue;
      out.push(this.ref(i));
      if (f & FLAG_WHOLE) break;
    }
    return out.reverse();
  }

  /** Partial pieces of `block` since its last whole one (at most MAX_PARTIALS are counted). */
  partialsSinceWhole(block: number): number {
    const list = this.blocks.get(block);
    if (!list) return 0;
    let n = 0;
    for (let k = list.length - 1; k >= 0 && n < MAX_PARTIALS; k--) {
      const f = this.flags[list[k]!]!;
      if (f & FLAG_VOID) continue;
      if (f & FLAG_WHOLE) break;
      n++;
    }
    return n;
  }

  /** Has the log a (non-void) piece of `block` with seq in (after, upTo]? */
  changedBetween(block: number, after: number, upTo: number): boolean {
    const list = this.blocks.get(block);
    if (!list) return false;
    for (let k = lastIndexAtOrBefore(list, this.seq, upTo); k >= 0; k--) {
      const i = list[k]!;
      if (this.seq[i]! <= after) return false;
      if (!(this.flags[i]! & FLAG_VOID)) return true;
    }
    return false;
  }

  /** Blocks with a (non-void) piece of seq in (after, upTo], ascending. Cost: the pieces in that span. */
  blocksChanged(after: number, upTo: number): number[] {
    const set = new Set<number>();
    const r0 = lastAtOrBefore(this.recSeq, after) + 1;
    const from = r0 < this.recFirst.length ? this.recFirst[r0]! : this.count;
    for (let i = from; i < this.count; i++) {
      if (this.seq[i]! > upTo) break;
      if (this.flags[i]! & FLAG_VOID) continue;
      set.add(this.blockOf[i]!);
    }
    return [...set].sort((a, b) => a - b);
  }

  /** The pieces of record `seq` in order, with their blocks (voided ones included: check FLAG_VOID). */
  recordPieces(seq: number): { block: number; piece: PieceRef }[] {
    const r = lastAtOrBefore(this.recSeq, seq);
    if (r < 0 || this.recSeq[r] !== seq) return [];
    const to = r + 1 < this.recFirst.length ? this.recFirst[r + 1]! : this.count;
    const out: { block: number; piece: PieceRef }[] = [];
    for (let i = this.recFirst[r]!; i < to; i++) out.push({ block: this.blockOf[i]!, piece: this.ref(i) });
    return out;
  }

  /**
   * A new history: the pieces `first` adds (a fold at seq c), then every piece of this one with
   * seq after c, in order (checkpoint.ts).
   */
  foldedCopy(c: number, first: (h: BlockHistory) => void): BlockHistory {
    const h = new BlockHistory(this.blockSize);
    first(h);
    const r0 = lastAtOrBefore(this.recSeq, c) + 1;
    for (let r = r0; r < this.recSeq.length; r++) {
      h.beginRecord(this.recSeq[r]!);
      const to = r + 1 < this.recFirst.length ? this.recFirst[r + 1]! : this.count;
      for (let i = this.recFirst[r]!; i < to; i++) {
        h.add(this.blockOf[i]!, this.seq[i]!, this.seg[i]!, this.pos[i]!, this.start[i]!, this.len[i]!, this.flags[i]!, this.hashes.subarray(i * 16, i * 16 + 16));
      }
    }
    return h;
  }

  /** Every block with any piece (any seq). */
  allBlocks(): IterableIterator<number> {
    return this.blocks.keys();
  }

  private ref(i: number): PieceRef {
    return { seq: this.seq[i]!, segment: this.seg[i]!, pos: this.pos[i]!, start: this.start[i]!, length: this.len[i]!, flags: this.flags[i]!, hash: this.hashes.subarray(i * 16, i * 16 + 16) };
  }

  private grow(): void {
    const n = this.seq.length * 2;
    const g = <T extends Float64Array | Uint32Array | Uint8Array>(a: T, size: number): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a);
      return b;
    };
    this.seq = g(this.seq, n);
    this.seg = g(this.seg, n);
    this.pos = g(this.pos, n);
    this.start = g(this.start, n);
    this.len = g(this.len, n);
    this.flags = g(this.flags, n);
    this.hashes = g(this.hashes, n * 16);
    this.blockOf = g(this.blockOf, n);
  }
}

/** Index of the last element of sorted `a` that is <= x, or -1. */
function lastAtOrBefore(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Index k of the last list[k] whose seq[list[k]] <= x (list ascending by seq), or -1. */
function lastIndexAtOrBefore(list: readonly number[], seq: Float64Array, x: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (seq[list[mid]!]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}
