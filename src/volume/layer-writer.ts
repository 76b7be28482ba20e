import { StrataError } from '../errors.js';
import { SLOT_ZERO } from '../format/map-log.js';
import type { Store } from '../store/store.js';
import type { BlockScan } from '../wasm/index.js';

/**
 * The one place where whole blocks are put into a layer ("allocate slots, write data, record
 * entries"): the volume's writes, copy-on-read fills, merges, write mirrors and copy passes all
 * come through here (as Layer.putBlocks / Layer.stageBlocks).
 *
 * What a put does, in order:
 *  1. synchronously: picks a slot for every data block (a new one, or the block's own slot when
 *     the in-place rule allows) and starts the store writes, one per run of consecutive slots
 *     whose bytes are consecutive (or gathered into `gather`), at most `maxRun` blocks each;
 *  2. `written`: those writes have landed. If one failed, every slot the put took is given back
 *     and it rejects; the map, the content ID and the bitmaps are untouched;
 *  3. `commit(keep)`, under the caller's lock: blocks `keep` refuses give their new slot back;
 *     slots overwritten under the 'own' rule are written now (the block must still have that
 *     slot); then one `setEntries` records the entries (map, hashes, content ID, ownership bitmap
 *     per run). A failed write here also gives every slot back and records nothing.
 *
 * Bytes of a slot overwritten in place by a failed write are unknown; its entry keeps the old
 * checksum, so a read of it reports `checksum-mismatch` rather than wrong data.
 */

/** What the writer needs of a layer (Layer implements it; structural so that this file does not import layer.ts). */
export interface SlotLayer {
  readonly blockSize: number;
  readonly data: Store;
  slot(block: number): number;
  isFresh(slot: number): boolean;
  /** a put overwrites fresh slots in place until `inPlaceDone` (a flush waits for it before taking its entries) */
  inPlaceStarted(): void;
  inPlaceDone(): void;
  allocate(n: number, out: number[]): void;
  unallocate(slots: number[]): void;
  setEntries(blocks: ArrayLike<number>, slots: ArrayLike<number>, count: number, hashes: Uint8Array | null, hashIndex?: ArrayLike<number>): void;
  markDataWritten(): void;
}

/**
 * Whole blocks to put into a layer. Block k is `blocks[k]` (each block at most once). Unless
 * `zero[k]` is set (a known-zero entry: no bytes), its bytes are at `data[index[k] * blockSize]`
 * and its XXH3-128 at `hashes[index[k] * 16]`.
 */
export interface BlockBatch {
  readonly blocks: readonly number[];
  readonly index: readonly number[];
  /** nonzero for a known-zero entry; absent: every block is data */
  readonly zero?: ArrayLike<number> | null;
  readonly data: Uint8Array;
  readonly hashes: Uint8Array;
}

/**
 * Which slot a data block goes to:
 * - 'none': always a new slot (copy-on-read fills, merges, write mirrors, copy passes to a new layer);
 * - 'fresh': the block's own slot when it was allocated since the last flush (no durable entry
 *   points at it), else a new one: the active layer's rule;
 * - 'own': the block's own slot whatever it is, written at commit and only if the block still has
 *   it; only for a layer nobody reads at those blocks until a later commit (a merge target that
 *   its child shadows).
 */
export type InPlace = 'none' | 'fresh' | 'own';

export interface PutOptions {
  inPlace?: InPlace;
  /** most blocks per store write (several writes in flight let the thread pool copy in parallel) */
  maxRun?: number;
  /**
   * Scratch for `blocks.length` blocks: a run of consecutive new slots whose bytes are not
   * consecutive in `data` is gathered here into one write (without it: a write per piece).
   */
  gather?: Uint8Array;
  /**
   * For a batch of one data block: the bytes [from, to) of it are all that differ from what the
   * block reads now. When it is overwritten in place (its own fresh slot, which holds exactly
   * what it reads now), only those bytes are written (a 4 KiB write into a 64 KiB block writes
   * 4 KiB, not the block).
   */
  changed?: { from: number; to: number };
}

/** A put in progress (see the file comment). */
export class PendingPut {
  /** per block of the batch: its slot (>= 0) or SLOT_ZERO */
  readonly slots: number[];
  /** the new slots this put took */
  readonly fresh: number[] = [];
  /** settles once the data written at staging has landed; rejects (slots given back) if any write failed */
  readonly written: Promise<void>;
  /** 'own' in-place blocks: batch position and the slot the block had at staging */
  private readonly ownK: number[] = [];
  private readonly ownSlot: number[] = [];
  private done = false;
  /** overwrites a fresh slot in place: the layer knows until this put is recorded or given back */
  private inPlace = false;

  constructor(
    private readonly layer: SlotLayer,
    readonly batch: BlockBatch,
    private readonly options: PutOptions = {},
  ) {
    const { blocks, zero } = batch;
    const n = blocks.length;
    const inPlace = options.inPlace ?? 'none';
    const slots = new Array<number>(n);
    /** batch positions going to new slots */
    const need: number[] = [];
    /** batch positions written at staging (new slots and 'fresh' in-place ones), in batch order */
    const now: number[] = [];
    for (let k = 0; k < n; k++) {
      if (zero && zero[k]) {
        slots[k] = SLOT_ZERO;
        continue;
      }
      const cur = inPlace === 'none' ? -1 : layer.slot(blocks[k]!);
      if (cur >= 0 && inPlace === 'fresh' && layer.isFresh(cur)) {
        slots[k] = cur;
        if (!this.inPlace) {
          this.inPlace = true;
          layer.inPlaceStarted();
        }
      } else if (cur >= 0 && inPlace === 'own') {
        slots[k] = cur;
        this.ownK.push(k);
        this.ownSlot.push(cur);
        continue;
      } else {
        slots[k] = -1;
        need.push(k);
      }
      now.push(k);
    }
    this.slots = slots;
    layer.allocate(need.length, this.fresh);
    for (let j = 0; j < need.length; j++) slots[need[j]!] = this.fresh[j]!;
    const ios: Promise<void>[] = [];
    const changed = options.changed;
    if (changed && n === 1 && now.length === 1 && need.length === 0) {
      // its own fresh slot: only the changed bytes
      const bs = layer.blockSize;
      const at = batch.index[0]! * bs;
      layer.markDataWritten();
      ios.push(layer.data.write(slots[0]! * bs + changed.from, batch.data.subarray(at + changed.from, at + changed.to)));
    } else this.writeRuns(now, slots, ios, options.gather);
    this.written = (ios.length === 1 ? ios[0]! : Promise.all(ios)).then(noop, (e: unknown) => {
      this.giveBack();
      throw e;
    });
    // the caller may never await `written` when a sibling write failed first: no unhandled rejection
    this.written.catch(() => {});
  }

  /**
   * Start one store write per run of consecutive slots over the batch positions `ks`: one
   * piece of `data` when the bytes are consecutive too, else gathered (when `gather` is given).
   */
  private writeRuns(ks: readonly number[], slots: readonly number[], ios: Promise<void>[], gather: Uint8Array | undefined): void {
    const { data, index } = this.batch;
    const layer = this.layer;
    const bs = layer.blockSize;
    const max = this.options.maxRun ?? Infinity;
    for (let j = 0; j < ks.length; ) {
      const s = slots[ks[j]!]!;
      const i0 = index[ks[j]!]!;
      let e = j + 1;
      let inData = true;
      while (e < ks.length && e - j < max && slots[ks[e]!] === s + (e - j)) {
        if (index[ks[e]!] !== i0 + (e - j)) {
          if (!gather) break;
          inData = false;
        }
        e++;
      }
      let bytes: Uint8Array;
      if (inData) bytes = data.subarray(i0 * bs, (i0 + (e - j)) * bs);
      else {
        bytes = gather!.subarray(j * bs, e * bs);
        for (let q = j; q < e; q++) {
          const i = index[ks[q]!]!;
          bytes.set(data.subarray(i * bs, (i + 1) * bs), (q - j) * bs);
        }
      }
      layer.markDataWritten();
      ios.push(layer.data.write(s * bs, bytes));
      j = e;
    }
  }

  private giveBack(): void {
    if (this.done) return;
    this.done = true;
    this.endInPlace();
    if (this.fresh.length > 0) this.layer.unallocate(this.fresh);
  }

  private endInPlace(): void {
    if (!this.inPlace) return;
    this.inPlace = false;
    this.layer.inPlaceDone();
  }

  /** Give back every slot this put took and record nothing (after `written`, instead of commit). */
  abort(): void {
    this.giveBack();
  }

  /**
   * Record the entries (after `written` resolved), under the caller's lock. Blocks for which
   * `keep` returns false are left out (their new slots given back). Returns the number of
   * blocks written in place at this step (the 'own' rule).
   */
  commit(keep?: (block: number) => boolean): Promise<number> {
    if (this.ownK.length > 0) return this.commitOwn(keep);
    try {
      this.record(keep, null);
      return Promise.resolve(0);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private async commitOwn(keep: ((block: number) => boolean) | undefined): Promise<number> {
    this.checkLive();
    const blocks = this.batch.blocks;
    const layer = this.layer;
    // 'own' in-place writes, only where the block still has the slot it had at staging
    const ownK: number[] = [];
    for (let j = 0; j < this.ownK.length; j++) {
      const k = this.ownK[j]!;
      const b = blocks[k]!;
      if (keep && !keep(b)) continue;
      if (layer.slot(b) !== this.ownSlot[j]) continue;
      ownK.push(k);
    }
    if (ownK.length > 0) {
      const ios: Promise<void>[] = [];
      this.writeRuns(ownK, this.slots, ios, undefined);
      try {
        await Promise.all(ios);
      } catch (e) {
        this.giveBack();
        throw e;
      }
    }
    this.record(keep, ownK);
    return ownK.length;
  }

  private checkLive(): void {
    if (this.done) throw new StrataError('invalid-argument', 'This put was already committed or given back (a failed write gives its slots back); stage the blocks again.');
  }

  /** One setEntries: in batch order, the 'own' blocks in `ownK` last (the map log's order as it always was). */
  private record(keep: ((block: number) => boolean) | undefined, ownK: readonly number[] | null): void {
    this.checkLive();
    this.done = true;
    this.endInPlace();
    const { blocks, hashes, index } = this.batch;
    const layer = this.layer;
    // again at recording: a flush that started after the data write cleared the layer's mark,
    // and the entries recorded now point at data it did not sync
    layer.markDataWritten();
    if (!keep && ownK === null) {
      layer.setEntries(blocks, this.slots, blocks.length, hashes, index);
      return;
    }
    const own = new Set(this.ownK);
    const keepBlocks: number[] = [];
    const keepSlots: number[] = [];
    const keepIndex: number[] = [];
    const unused: number[] = [];
    for (let k = 0; k < blocks.length; k++) {
      const slot = this.slots[k]!;
      if (own.has(k)) continue;
      if (keep && !keep(blocks[k]!)) {
        if (slot >= 0) unused.push(slot);
        continue;
      }
      keepBlocks.push(blocks[k]!);
      keepSlots.push(slot);
      keepIndex.push(index[k]!);
    }
    for (const k of ownK ?? []) {
      keepBlocks.push(blocks[k]!);
      keepSlots.push(this.slots[k]!);
      keepIndex.push(index[k]!);
    }
    if (unused.length > 0) layer.unallocate(unused);
    layer.setEntries(keepBlocks, keepSlots, keepBlocks.length, hashes, keepIndex);
  }
}

function noop(): void {}

/**
 * The batch for whole blocks given as runs: `runs` is flat [firstBlock, count]*, the blocks whose
 * bytes `data` holds back to back; `scan` is scanBlocks(data). A zero block becomes a known-zero
 * entry when `wantZero(i, block)` says so (default: always), else it is left out.
 */
export function batchFromRuns(runs: readonly number[], data: Uint8Array, scan: BlockScan, wantZero?: (i: number, block: number) => boolean): BlockBatch {
  const blocks: number[] = [];
  const index: number[] = [];
  const zero: number[] = [];
  let anyZero = false;
  for (let r = 0, i = 0; r < runs.length; r += 2) {
    const end = runs[r]! + runs[r + 1]!;
    for (let block = runs[r]!; block < end; block++, i++) {
      if (scan.zero[i]) {
        if (wantZero && !wantZero(i, block)) continue;
        anyZero = true;
      }
      blocks.push(block);
      index.push(i);
      zero.push(scan.zero[i]!);
    }
  }
  return { blocks, index, zero: anyZero ? zero : null, data, hashes: scan.hashes };
}
