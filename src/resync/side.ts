import { StrataError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { Volume } from '../volume/volume.js';
import { hashSegments128, loadKernels } from '../wasm/index.js';
import type { SegmentSums } from './segment-sums.js';
import { bindingOf, DEFAULT_SEGMENT_SIZE } from './segment-sums.js';
import { checkSegmentSize } from './sums-format.js';

/**
 * One side of a resync: what is compared and, on the destination, written. A stratadisk volume
 * offers the checksums it keeps valid (SegmentSums) and hashes the rest on the fly; a raw file
 * or block device (a Store) hashes everything on the fly and keeps nothing. A side reached over
 * a link (remote.ts) implements the same interface.
 */
export interface ResyncSide {
  readonly label: string;
  readonly size: number;
  readonly segmentSize: number;
  readonly writable: boolean;
  /** names what this side holds (a volume's uuid, a file's path): a resumed resync must meet the same pair */
  readonly identity: string;
  /** Valid checksums it holds for segments [first, first+count): valid[k] 1 and hashes[16k..] where known. */
  known(first: number, count: number): Promise<{ valid: Uint8Array; hashes: Uint8Array }>;
  /** Hash segments `list` (ascending) by reading them; 16 bytes each, in list order. */
  hash(list: readonly number[]): Promise<Uint8Array>;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
  /** the durability barrier (a no-op on a read-only side) */
  flush(): Promise<void>;
  /** bytes this side read to hash them */
  readonly bytesHashed: number;
  /** a side over a link: bytes it put on the link (`sent`, towards that side) and took off it */
  readonly wire?: { readonly sent: number; readonly received: number };
}

/** Reads at most this much per hash read (many consecutive segments per read; one buffer reused). */
const HASH_BATCH = 16 * 1024 * 1024;

/** The shared hashing of a side: runs of consecutive segments, one read and one kernel call each. */
abstract class HashingSide implements ResyncSide {
  abstract readonly label: string;
  abstract readonly size: number;
  abstract readonly writable: boolean;
  abstract readonly identity: string;
  bytesHashed = 0;
  private bufs: [Uint8Array, Uint8Array] | null = null;
  private hashing = false;

  constructor(readonly segmentSize: number) {}

  abstract readInto(offset: number, target: Uint8Array): Promise<void>;
  abstract known(first: number, count: number): Promise<{ valid: Uint8Array; hashes: Uint8Array }>;
  abstract write(offset: number, data: Uint8Array): Promise<void>;
  abstract flush(): Promise<void>;

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  async hash(list: readonly number[]): Promise<Uint8Array> {
    const seg = this.segmentSize;
    const count = Math.ceil(this.size / seg);
    const out = new Uint8Array(list.length * 16);
    const per = Math.max(1, Math.floor(HASH_BATCH / seg));
    // runs of consecutive segments, at most one batch each
    const runs: [k: number, n: number][] = [];
    for (let k = 0; k < list.length; ) {
      let n = 1;
      while (k + n < list.length && n < per && list[k + n] === list[k]! + n) n++;
      const first = list[k]!;
      if (!Number.isInteger(first) || first < 0 || first + n > count) throw new StrataError('out-of-range', `${this.label}: segment ${first} is beyond its end.`);
      runs.push([k, n]);
      k += n;
    }
    // two buffers: the next run is read while this one is hashed (reused, unless a call overlaps)
    const size = Math.min(per * seg, list.length * seg, this.size);
    const bufs: [Uint8Array, Uint8Array] = this.bufs && !this.hashing && this.bufs[0].length >= size ? this.bufs : [new Uint8Array(size), new Uint8Array(size)];
    if (!this.hashing) this.bufs = bufs;
    this.hashing = true;
    try {
      return await this.hashRuns(list, runs, bufs, out);
    } finally {
      if (this.bufs === bufs) this.hashing = false;
    }
  }

  private async hashRuns(list: readonly number[], runs: [number, number][], bufs: [Uint8Array, Uint8Array], out: Uint8Array): Promise<Uint8Array> {
    const seg = this.segmentSize;
    const start = (j: number): Promise<Uint8Array> => {
      const [k, n] = runs[j]!;
      const off = list[k]! * seg;
      const view = bufs[j % 2]!.subarray(0, Math.min(n * seg, this.size - off));
      return this.readInto(off, view).then(() => view);
    };
    let next = runs.length > 0 ? start(0) : null;
    for (let j = 0; j < runs.length; j++) {
      const view = await next!;
      next = j + 1 < runs.length ? start(j + 1) : null;
      const [k, n] = runs[j]!;
      try {
        hashSegments128(view, seg, out.subarray(k * 16, (k + n) * 16));
      } catch (e) {
        await next?.catch(() => {});
        throw e;
      }
      this.bytesHashed += view.length;
    }
    return out;
  }
}

function checkRange(side: ResyncSide, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > side.size) {
    throw new StrataError('out-of-range', `${side.label}: bytes ${offset}+${length} are beyond its size (${side.size}).`);
  }
}

/** A stratadisk volume; `sums` (SegmentSums.open) lends its valid checksums. */
export class VolumeSide extends HashingSide {
  readonly label: string;
  readonly size: number;
  readonly writable: boolean;
  readonly identity: string;

  constructor(readonly volume: Volume, readonly sums: SegmentSums | null, segmentSize?: number) {
    super(sums?.segmentSize ?? segmentSize ?? Math.max(DEFAULT_SEGMENT_SIZE, volume.blockSize));
    if (sums && segmentSize !== undefined && segmentSize !== sums.segmentSize) {
      throw new StrataError('invalid-argument', `${volume.label}: its checksums use ${sums.segmentSize}-byte segments, not ${segmentSize}.`);
    }
    checkSegmentSize(this.segmentSize, volume.blockSize);
    this.label = volume.label;
    this.size = volume.size;
    this.writable = !volume.readOnly;
    // a side that is only read names its content too: a resync resumed after the source changed
    // starts again from the beginning (the destination's own writes must not change its name)
    const b = bindingOf(volume);
    this.identity = volume.readOnly ? `volume:${b.uuid}@${b.contentId}/${b.chain.join(',')}` : `volume:${b.uuid}`;
  }

  readInto(offset: number, target: Uint8Array): Promise<void> {
    return this.volume.readInto(offset, target);
  }

  async known(first: number, count: number): Promise<{ valid: Uint8Array; hashes: Uint8Array }> {
    const valid = new Uint8Array(count);
    const hashes = new Uint8Array(count * 16);
    const s = this.sums;
    if (s?.usable) {
      valid.set(s.valid.subarray(first, first + count));
      hashes.set(s.hashes.subarray(first * 16, (first + count) * 16));
    }
    return { valid, hashes };
  }

  /** Hashing on the fly also feeds the volume's checksums (valid after the next flush, if unwritten meanwhile). */
  override async hash(list: readonly number[]): Promise<Uint8Array> {
    const gens = this.sums?.generations(list);
    const out = await super.hash(list);
    if (gens) this.sums!.offer(list, out, gens);
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (!this.writable) throw new StrataError('read-only', `${this.label} is open read-only.`);
    checkRange(this, offset, data.length);
    await this.volume.write(offset, data);
  }

  async flush(): Promise<void> {
    if (!this.writable) return;
    if (this.sums) await this.sums.settleOffered();
    else await this.volume.flush();
  }
}

/** A raw file or block device: everything hashed on the fly, nothing kept. */
export class StoreSide extends HashingSide {
  readonly size: number;
  readonly writable: boolean;

  constructor(readonly store: Store, readonly label: string, readonly identity: string, segmentSize = DEFAULT_SEGMENT_SIZE, writable = !store.readOnly) {
    super(segmentSize);
    checkSegmentSize(segmentSize, 1);
    this.size = store.size;
    this.writable = writable && !store.readOnly;
  }

  readInto(offset: number, target: Uint8Array): Promise<void> {
    return this.store.readInto(offset, target);
  }

  async known(_first: number, count: number): Promise<{ valid: Uint8Array; hashes: Uint8Array }> {
    return { valid: new Uint8Array(count), hashes: new Uint8Array(count * 16) };
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (!this.writable) throw new StrataError('read-only', `${this.label} is open read-only.`);
    checkRange(this, offset, data.length);
    await this.store.write(offset, data);
  }

  async flush(): Promise<void> {
    if (this.writable) await this.store.flush();
  }
}

/** Load the kernels (hashing needs them) — sides are usually built right after. */
export function ready(): Promise<void> {
  return loadKernels();
}
