/**
 * The group-commit batch of a strict shadow writer: the old content of blocks being overwritten
 * for the first time since the newest copy (one future diff-area record for the receiving area)
 * and the volume writes that wait for it, in order.
 *
 * A write that needs preservation reads the old blocks into the batch and queues its new data;
 * nothing reaches the volume yet. At the group commit (a full batch, `flush()`, a copy created or
 * deleted, `close()`) the writer appends the whole batch as one record, flushes it once,
 * publishes its bits, and only then writes the queued data to the volume, in order. So a crash
 * at any point leaves each queued block either not written at all or written after its old
 * content was durable: no copy ever shows a block overwritten after its creation.
 *
 * While a batch is open every write is queued (even of blocks preserved earlier), so queued
 * writes to one block apply in order; a block neither preserved nor in the batch has no queued
 * write, so the volume holds its current content and preserving it reads the volume directly.
 */
import type { Store } from '../store/store.js';
import { SparseBitmap } from '../wasm/index.js';
import { batchHeadBytes, MAX_RECORD_DATA, MAX_RUNS } from './diff-area.js';

/** Commit when the queued new data reaches this (the old data is bounded by one record). */
export const BATCH_WRITE_BYTES = 16 << 20;
/** ... or when this many writes are queued (so small writes reach the volume, and readers see publications, often). */
export const BATCH_WRITES = 256;

/** Is the batch due for its group commit? */
export function batchDue(b: PreserveBatch): boolean {
  return b.writes.length >= BATCH_WRITES || b.writeBytes >= BATCH_WRITE_BYTES;
}

export interface QueuedWrite {
  offset: number;
  data: Uint8Array;
}

export class PreserveBatch {
  /** blocks whose old content is in the batch */
  bits = new SparseBitmap();
  /** flat [start, count]* runs, in the order their data sits in `chunks` */
  runs: number[] = [];
  blocks = 0;
  /**
   * The record being built, reused from commit to commit: room for the largest record header,
   * then the old blocks, read straight into place (no copy when the record is sealed).
   */
  private buf: Uint8Array | null = null;
  private readonly headRoom: number;
  private readonly dataRoom: number;
  /** volume writes waiting for the record, in order */
  writes: QueuedWrite[] = [];
  writeBytes = 0;
  /** the queued data, copied here (reused from commit to commit; a larger write gets its own copy) */
  private arena: Uint8Array | null = null;
  /** reads in flight holding a view of queued writes (their data must not be overwritten) */
  private pins = 0;

  constructor(readonly blockSize: number, private readonly volumeSize: number) {
    const blocks = Math.ceil(volumeSize / blockSize);
    this.dataRoom = Math.min(Math.max(MAX_RECORD_DATA, blockSize), blocks * blockSize);
    this.headRoom = batchHeadBytes(Math.min(MAX_RUNS, Math.max(1, blocks)));
  }

  get empty(): boolean {
    return this.blocks === 0 && this.writes.length === 0;
  }

  get runCount(): number {
    return this.runs.length / 2;
  }

  /** Bytes of the record holding the batch plus `runs` more runs of `blocks` more blocks. */
  recordBytes(runs = 0, blocks = 0): number {
    return batchHeadBytes(this.runCount + runs) + (this.blocks + blocks) * this.blockSize;
  }

  /** Read the old content of `runs` (flat [start, count]*) from the volume into the batch. */
  async take(volume: Store, runs: number[]): Promise<void> {
    const bs = this.blockSize;
    this.buf ??= new Uint8Array(this.headRoom + this.dataRoom);
    const reads: Promise<void>[] = [];
    let at = this.headRoom + this.blocks * bs;
    for (let i = 0; i < runs.length; i += 2) {
      const from = runs[i]! * bs;
      const len = runs[i + 1]! * bs;
      const chunk = this.buf.subarray(at, at + len);
      const inVolume = Math.min(len, this.volumeSize - from);
      if (inVolume < len) chunk.fill(0, inVolume);
      reads.push(volume.readInto(from, chunk.subarray(0, inVolume)));
      at += len;
    }
    await Promise.all(reads);
    for (let i = 0; i < runs.length; i += 2) {
      this.runs.push(runs[i]!, runs[i + 1]!);
      this.bits.set(runs[i]!, runs[i + 1]!);
      this.blocks += runs[i + 1]!;
    }
  }

  /** Queue a volume write (the data is copied: the caller may reuse its buffer). */
  queue(offset: number, data: Uint8Array): void {
    let copy: Uint8Array;
    if (this.writeBytes + data.length <= BATCH_WRITE_BYTES) {
      this.arena ??= new Uint8Array(Math.min(BATCH_WRITE_BYTES, Math.max(this.volumeSize, this.blockSize)));
      if (this.writeBytes + data.length <= this.arena.length) {
        copy = this.arena.subarray(this.writeBytes, this.writeBytes + data.length);
        copy.set(data);
      } else copy = data.slice();
    } else copy = data.slice();
    this.writes.push({ offset, data: copy });
    this.writeBytes += data.length;
  }

  /**
   * The queued writes in waves of writes that do not overlap one another: each wave may be
   * issued at once; waves apply in order, so a later write to the same bytes lands last.
   */
  waves(): QueuedWrite[][] {
    const bs = this.blockSize;
    const out: QueuedWrite[][] = [];
    let wave: QueuedWrite[] = [];
    let touched = new SparseBitmap();
    try {
      for (const w of this.writes) {
        // overlap at block granularity (conservative: two writes into one block go in two waves)
        const first = Math.floor(w.offset / bs);
        const count = Math.ceil((w.offset + w.data.length) / bs) - first;
        if (touched.nextSet(first, first + count) >= 0) {
          out.push(wave);
          wave = [];
          touched.dispose();
          touched = new SparseBitmap();
        }
        wave.push(w);
        touched.set(first, count);
      }
    } finally {
      touched.dispose();
    }
    if (wave.length > 0) out.push(wave);
    return out;
  }

  /**
   * Every queued write reached the volume. The arena is reused for the next batch unless a read
   * still holds a view of these writes (then a fresh one is taken and the old one is left to it).
   */
  written(): void {
    this.writes = [];
    this.writeBytes = 0;
    if (this.pins > 0) this.arena = null;
  }

  /**
   * The writes queued now, for a read of the volume starting now: whatever the read then finds
   * in the volume (a commit may write these meanwhile, in waves), laying these over it gives
   * every byte acknowledged before the read. `release()` when the read is done.
   */
  pin(): PinnedWrites {
    const list = this.writes;
    const n = list.length;
    this.pins++;
    let held = true;
    return {
      overlay: (offset, target) => overlay(list, n, offset, target),
      release: () => {
        if (held) this.pins--;
        held = false;
      },
    };
  }

  /** The record buffer: `head` bytes left for the record header, then the old blocks. */
  recordBuffer(): { buf: Uint8Array; runs: Uint32Array; head: number } {
    const head = batchHeadBytes(this.runCount);
    const buf = this.buf!.subarray(this.headRoom - head, this.headRoom + this.blocks * this.blockSize);
    return { buf, runs: Uint32Array.from(this.runs), head };
  }

  /** The record is durable and published: forget the old content (the writes still wait). */
  preserved(): void {
    this.bits.dispose();
    this.bits = new SparseBitmap();
    this.runs = [];
    this.blocks = 0;
  }

  dispose(): void {
    this.bits.dispose();
  }
}

/** A read's view of the writes queued when it started (PreserveBatch.pin). */
export interface PinnedWrites {
  /** Lay the writes over `target`, which holds the volume's bytes from `offset`, in order. */
  overlay(offset: number, target: Uint8Array): void;
  release(): void;
}

function overlay(list: readonly QueuedWrite[], n: number, offset: number, target: Uint8Array): void {
  const end = offset + target.length;
  for (let i = 0; i < n; i++) {
    const w = list[i]!;
    const s = Math.max(offset, w.offset);
    const e = Math.min(end, w.offset + w.data.length);
    if (s < e) target.set(w.data.subarray(s - w.offset, e - w.offset), s - offset);
  }
}
