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
import { batchHeadBytes } from './diff-area.js';

/** Commit when the queued new data reaches this (the old data is bounded by one record). */
export const BATCH_WRITE_BYTES = 16 << 20;

export class PreserveBatch {
  /** blocks whose old content is in the batch */
  bits = new SparseBitmap();
  /** flat [start, count]* runs, in the order their data sits in `chunks` */
  runs: number[] = [];
  blocks = 0;
  private chunks: Uint8Array[] = [];
  /** volume writes waiting for the record, in order */
  writes: { offset: number; data: Uint8Array }[] = [];
  writeBytes = 0;

  constructor(readonly blockSize: number, private readonly volumeSize: number) {}

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
    const reads: Promise<void>[] = [];
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < runs.length; i += 2) {
      const from = runs[i]! * bs;
      const chunk = new Uint8Array(runs[i + 1]! * bs);
      chunks.push(chunk);
      reads.push(volume.readInto(from, chunk.subarray(0, Math.min(chunk.length, this.volumeSize - from))));
    }
    await Promise.all(reads);
    for (let i = 0; i < runs.length; i += 2) {
      this.runs.push(runs[i]!, runs[i + 1]!);
      this.bits.set(runs[i]!, runs[i + 1]!);
      this.blocks += runs[i + 1]!;
    }
    this.chunks.push(...chunks);
  }

  /** Queue a volume write (the data is copied: the caller may reuse its buffer). */
  queue(offset: number, data: Uint8Array): void {
    this.writes.push({ offset, data: data.slice() });
    this.writeBytes += data.length;
  }

  /** The record buffer: `head` bytes left for the record header, then the old blocks. */
  recordBuffer(): { buf: Uint8Array; runs: Uint32Array; head: number } {
    const head = batchHeadBytes(this.runCount);
    const buf = new Uint8Array(head + this.blocks * this.blockSize);
    let at = head;
    for (const c of this.chunks) {
      buf.set(c, at);
      at += c.length;
    }
    return { buf, runs: Uint32Array.from(this.runs), head };
  }

  /** The record is durable and published: forget the old content (the writes still wait). */
  preserved(): void {
    this.bits.dispose();
    this.bits = new SparseBitmap();
    this.runs = [];
    this.chunks = [];
    this.blocks = 0;
  }

  /** Lay the queued writes over `target`, which holds the volume's bytes from `offset`. */
  overlay(offset: number, target: Uint8Array): void {
    const end = offset + target.length;
    for (const w of this.writes) {
      const s = Math.max(offset, w.offset);
      const e = Math.min(end, w.offset + w.data.length);
      if (s < e) target.set(w.data.subarray(s - w.offset, e - w.offset), s - offset);
    }
  }

  dispose(): void {
    this.bits.dispose();
  }
}
