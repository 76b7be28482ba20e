import { resolveRuns, type SparseBitmap } from '../wasm/index.js';
import { SLOT_ABSENT } from './layer.js';
import type { ChainData, ChainLayer } from './chain-layer.js';
import { RunReader } from './run-reader.js';
import type { VerifyMode } from './verify.js';

export const NO_OWNER = 0xffff;
/** Largest range (in blocks) readIntoNow serves; longer reads are bandwidth-bound and go async. */
const NOW_MAX_BLOCKS = 256;
/** Reads of up to this many blocks find their owners by slot lookups rather than a resolve call. */
const LOOKUP_MAX_BLOCKS = 16;

export type { ChainData, ChainLayer } from './chain-layer.js';

export interface ChainOptions {
  /** how reads are checked against the stored block checksums (default 'on') */
  verify?: VerifyMode;
  /** names the volume in errors */
  label?: string;
}

/**
 * A read path through a stack of layers (index 0 = topmost). One kernel call finds the owner
 * of every block in the range as runs; each run is then read from its owner with consecutive
 * slots coalesced into one store read, and all reads are in flight together. Every run read
 * from a layer with checksums is verified (src/volume/verify.ts) before the read resolves.
 */
export class Chain {
  readonly bitmaps: SparseBitmap[];
  readonly reader: RunReader;

  constructor(
    readonly layers: ChainLayer[],
    readonly blockSize: number,
    options: ChainOptions = {},
  ) {
    this.bitmaps = layers.map((l) => l.owned);
    this.reader = new RunReader(blockSize, options.verify ?? 'on', options.label ?? 'The volume');
  }

  /** Fill `target` with the bytes at `offset` (the caller has checked the range). */
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    if (target.length === 0) return;
    const bs = this.blockSize;
    const end = offset + target.length;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    const ios: Promise<void>[] = [];
    if (first === last) {
      // One block (the common small random I/O): the owner is the topmost layer that maps it.
      // A few in-memory slot lookups cost far less than a resolve call and its run array, and
      // give the same answer (a layer's ownership bit is set exactly when its slot is not absent).
      const layers = this.layers;
      for (let i = 0; i < layers.length; i++) {
        const layer = layers[i]!;
        const s = layer.slot(first);
        if (s === SLOT_ABSENT) continue;
        if (s < 0) target.fill(0);
        else {
          this.reader.read(layer, s, first, first + 1, offset, end, offset, target, ios);
          await ios[0];
        }
        return;
      }
      target.fill(0);
      return;
    }
    if (last - first < LOOKUP_MAX_BLOCKS) {
      // A few blocks (a typical request of a server): slot lookups cost less than a resolve
      // call and its run array.
      this.byLookup(offset, target, (layer, s, b, e, from, to) => {
        this.reader.read(layer, s, b, e, from, to, offset, target, ios);
        return true;
      });
      if (ios.length === 1) await ios[0];
      else if (ios.length > 1) await Promise.all(ios);
      return;
    }
    const runs = resolveRuns(this.bitmaps, first, last - first + 1);
    for (let r = 0; r < runs.length; r += 3) {
      const runStart = runs[r]!;
      const runEnd = runStart + runs[r + 1]!;
      const owner = runs[r + 2]!;
      if (owner === NO_OWNER) {
        target.fill(0, Math.max(offset, runStart * bs) - offset, Math.min(end, runEnd * bs) - offset);
        continue;
      }
      const layer = this.layers[owner]!;
      let b = runStart;
      while (b < runEnd) {
        const s = layer.slot(b);
        let e = b + 1;
        if (s < 0) {
          while (e < runEnd && layer.slot(e) < 0) e++;
          target.fill(0, Math.max(offset, b * bs) - offset, Math.min(end, e * bs) - offset);
        } else {
          while (e < runEnd && layer.slot(e) === s + (e - b)) e++;
          this.reader.read(layer, s, b, e, Math.max(offset, b * bs), Math.min(end, e * bs), offset, target, ios);
        }
        b = e;
      }
    }
    if (ios.length === 1) await ios[0];
    else if (ios.length > 1) await Promise.all(ios);
  }

  /**
   * readInto without a promise, for hot read loops: true when `target` is filled; false when a
   * store declined to read synchronously (Store.readIntoNow) or the range spans more than
   * NOW_MAX_BLOCKS blocks; `target` may then be partly written, and readInto does it all again.
   * Owners are found by slot lookups, a block at a time (no resolve call, no allocation).
   * A checksum mismatch throws, as readInto rejects.
   */
  readIntoNow(offset: number, target: Uint8Array): boolean {
    if (target.length === 0) return true;
    const bs = this.blockSize;
    if (Math.floor((offset + target.length - 1) / bs) - Math.floor(offset / bs) >= NOW_MAX_BLOCKS) return false;
    return this.byLookup(offset, target, (layer, s, b, e, from, to) => this.reader.readNow(layer, s, b, e, from, to, offset, target));
  }

  /**
   * Walk [offset, offset+target.length) a block at a time, owners found by slot lookups: zero
   * runs are filled here, and each run of consecutive slots of one layer is handed to `read`
   * (layer, first slot, blocks [b, e), volume bytes [from, to)). Stops with false when `read` does.
   */
  private byLookup(offset: number, target: Uint8Array, read: (layer: ChainLayer, s: number, b: number, e: number, from: number, to: number) => boolean): boolean {
    const bs = this.blockSize;
    const end = offset + target.length;
    const last = Math.floor((end - 1) / bs);
    for (let b = Math.floor(offset / bs); b <= last; ) {
      const owner = this.top(b);
      const s = this.topSlot;
      let e = b + 1;
      const from = Math.max(offset, b * bs);
      if (s < 0) {
        while (e <= last && (this.top(e) < 0 || this.topSlot < 0)) e++;
        target.fill(0, from - offset, Math.min(end, e * bs) - offset);
      } else {
        while (e <= last && this.top(e) === owner && this.topSlot === s + (e - b)) e++;
        if (!read(this.layers[owner]!, s, b, e, from, Math.min(end, e * bs))) return false;
      }
      b = e;
    }
    return true;
  }

  /** slot found by the last top() call */
  private topSlot = SLOT_ABSENT;

  /** Index of the topmost layer that maps `block` (its slot in topSlot), or -1 (topSlot absent). */
  private top(block: number): number {
    const layers = this.layers;
    for (let i = 0; i < layers.length; i++) {
      const s = layers[i]!.slot(block);
      if (s !== SLOT_ABSENT) {
        this.topSlot = s;
        return i;
      }
    }
    this.topSlot = SLOT_ABSENT;
    return -1;
  }

  /** Owner runs for [first, first+count): flat [start, length, ownerIndex]*. */
  runs(first: number, count: number): Uint32Array {
    return resolveRuns(this.bitmaps, first, count);
  }
}

