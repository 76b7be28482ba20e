import type { Store } from '../store/store.js';
import { RwLock } from '../util/rwlock.js';
import { scanBlocks } from '../wasm/index.js';
import { SLOT_ABSENT, type Layer } from './layer.js';
import { batchFromRuns } from './layer-writer.js';
import { RunReader } from './run-reader.js';

/** Read-ahead starts at this many blocks after two sequential misses and doubles per further one. */
const FIRST_WINDOW = 2;
/** Default largest read-ahead in bytes. */
export const DEFAULT_READ_AHEAD = 1 << 20;

export interface CopyOnReadStats {
  /** fetches from the image (each is one request of the source, or a few when longer than its request bound) */
  fetches: number;
  /** blocks fetched and put in the cache */
  fetchedBlocks: number;
  /** of those, blocks fetched by read-ahead beyond what was asked for */
  readAheadBlocks: number;
}

interface Fetch {
  start: number;
  end: number;
  /** settles (never rejects) once the blocks are in the cache or the fetch failed */
  settled: Promise<void>;
}

interface Fetched {
  start: number;
  end: number;
  buf: Uint8Array;
}

/**
 * The data of a volume's remote base, as the chain reads it: block b of the image sits at
 * offset b * blockSize. A read of blocks not yet local fetches them from `source` (an HttpStore,
 * or any read-only Store holding a flat image), hands the bytes to the reader and stores them in
 * the cache layer (copy on read). Blocks being fetched are fetched once: a second reader waits
 * for the first. Sequential misses read ahead (2, 4, 8 ... blocks, up to `maxReadAhead`); the
 * blocks read ahead go into the cache too, so they are not wasted.
 *
 * Writes into the cache layer hold `cacheLock` shared; flushing the cache holds it exclusively,
 * so a flush never records an entry whose data write is still in flight, and reads served
 * locally never wait for a flush. Cache entries become durable after their data (Layer.flush):
 * a crash loses at most fetched-clean blocks, which are simply fetched again.
 */
export class CopyOnReadStore {
  readonly stats: CopyOnReadStats = { fetches: 0, fetchedBlocks: 0, readAheadBlocks: 0 };
  /** shared by cache writes, exclusive for cache flushes */
  readonly cacheLock = new RwLock();
  /** blocks in the image (the last may be partial) */
  readonly blocks: number;
  private readonly inflight: Fetch[] = [];
  private seqEnd = -1;
  private window = 0;
  /** called after blocks were added to the cache (the owner schedules a flush) */
  onCached: (() => void) | undefined;
  /** reads of cached blocks, checked against their checksums (the owner sets mode and label) */
  reader: RunReader;

  constructor(
    private readonly source: Store,
    /** null: read through without caching (read-only volumes) */
    private readonly cache: Layer | null,
    readonly blockSize: number,
    readonly imageSize: number,
    private readonly maxReadAhead = DEFAULT_READ_AHEAD,
  ) {
    this.blocks = Math.ceil(imageSize / blockSize);
    this.reader = new RunReader(blockSize, 'on', 'The volume');
  }

  /** Bytes [offset, offset + target.length) of the image, zeros past its end. */
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    const bs = this.blockSize;
    const end = offset + target.length;
    if (!this.cache) {
      const srcEnd = Math.min(end, this.imageSize);
      if (srcEnd < end) target.fill(0, Math.max(0, srcEnd - offset));
      if (srcEnd > offset) await this.source.readInto(offset, target.subarray(0, srcEnd - offset));
      return;
    }
    const b0 = Math.floor(offset / bs);
    const b1 = Math.min(this.blocks, Math.ceil(end / bs));
    const mine = await this.ensure(b0, b1, this.readAhead(b0), true);
    await this.serve(b0, b1, offset, target, mine);
  }

  /** Make blocks [first, first + count) local, without read-ahead (the stream job). Returns blocks fetched. */
  async fetchBlocks(first: number, count: number): Promise<number> {
    if (!this.cache) return 0;
    const got = await this.ensure(first, Math.min(this.blocks, first + count), 0);
    let n = 0;
    for (const f of got) n += f.end - f.start;
    return n;
  }

  /**
   * Adaptive read-ahead: grows while misses continue where the last fetch (read-ahead included)
   * ended, resets otherwise. Reads served from the cache in between never get here.
   */
  private readAhead(b0: number): number {
    const max = Math.floor(this.maxReadAhead / this.blockSize);
    if (b0 === this.seqEnd) this.window = this.window === 0 ? FIRST_WINDOW : Math.min(max, this.window * 2);
    else this.window = 0;
    return Math.min(this.window, max);
  }

  /** Get every block of [b0, b1) into the cache; returns what this call fetched itself (with its bytes). */
  private async ensure(b0: number, b1: number, ahead: number, trackSequence = false): Promise<Fetched[]> {
    const cache = this.cache!;
    for (;;) {
      const waits: Promise<void>[] = [];
      for (const f of this.inflight) if (f.start < b1 && f.end > b0) waits.push(f.settled);
      if (waits.length > 0) {
        // Someone is fetching part of this range: wait, then look again (their fetch may have failed).
        await Promise.all(waits);
        continue;
      }
      const runs = absentRuns(cache, b0, b1);
      if (runs.length === 0) {
        if (trackSequence) this.seqEnd = b1;
        return [];
      }
      // Read ahead after the last miss when it reaches the end of the range.
      const n = runs.length;
      if (ahead > 0 && runs[n - 1] === b1) {
        const limit = Math.min(this.blocks, b1 + ahead);
        let e = b1;
        while (e < limit && cache.slot(e) === SLOT_ABSENT && !this.isInflight(e)) e++;
        this.stats.readAheadBlocks += e - b1;
        runs[n - 1] = e;
      }
      if (trackSequence) this.seqEnd = Math.max(b1, runs[n - 1]!);
      const ps: Promise<Fetched>[] = [];
      for (let i = 0; i < n; i += 2) ps.push(this.fetch(runs[i]!, runs[i + 1]!));
      return Promise.all(ps);
    }
  }

  private isInflight(block: number): boolean {
    for (const f of this.inflight) if (block >= f.start && block < f.end) return true;
    return false;
  }

  /** Fetch blocks [start, end) and put them in the cache. Registers itself synchronously. */
  private fetch(start: number, end: number): Promise<Fetched> {
    const bs = this.blockSize;
    const p = (async (): Promise<Fetched> => {
      const buf = new Uint8Array((end - start) * bs);
      const srcEnd = Math.min(end * bs, this.imageSize);
      this.stats.fetches++;
      await this.source.readInto(start * bs, buf.subarray(0, srcEnd - start * bs));
      await this.cacheLock.read(() => this.store(start, buf));
      this.stats.fetchedBlocks += end - start;
      return { start, end, buf };
    })();
    const f: Fetch = { start, end, settled: p.then(noop, noop) };
    this.inflight.push(f);
    const remove = () => {
      const i = this.inflight.indexOf(f);
      if (i >= 0) this.inflight.splice(i, 1);
    };
    p.then(remove, remove);
    return p;
  }

  /** Write fetched blocks into the cache layer: zero blocks as known-zero, others in new slots, runs coalesced. */
  private async store(start: number, buf: Uint8Array): Promise<void> {
    const n = buf.length / this.blockSize;
    await this.cache!.putBlocks(batchFromRuns([start, n], buf, scanBlocks(buf, this.blockSize)));
    this.onCached?.();
  }

  /** Copy [offset, offset + target.length) from this call's own fetches, or else from the cache. */
  private async serve(b0: number, b1: number, offset: number, target: Uint8Array, mine: Fetched[]): Promise<void> {
    const cache = this.cache!;
    const bs = this.blockSize;
    const end = offset + target.length;
    const ios: Promise<void>[] = [];
    // Bytes past the image's last block (a volume larger than its image) read as zeros.
    if (end > b1 * bs) target.fill(0, Math.max(0, b1 * bs - offset));
    for (let b = b0; b < b1; ) {
      const own = mine.find((f) => b >= f.start && b < f.end);
      let e: number;
      if (own) {
        e = Math.min(b1, own.end);
        const from = Math.max(offset, b * bs);
        const to = Math.min(end, e * bs);
        target.set(own.buf.subarray(from - own.start * bs, to - own.start * bs), from - offset);
      } else {
        const s = cache.slot(b);
        e = b + 1;
        const from = Math.max(offset, b * bs);
        if (s < 0) {
          while (e < b1 && cache.slot(e) < 0 && !mine.some((f) => e >= f.start && e < f.end)) e++;
          target.fill(0, from - offset, Math.min(end, e * bs) - offset);
        } else {
          while (e < b1 && cache.slot(e) === s + (e - b)) e++;
          this.reader.read(cache, s, b, e, from, Math.min(end, e * bs), offset, target, ios);
        }
      }
      b = e;
    }
    if (ios.length > 0) await Promise.all(ios);
  }
}

function noop(): void {}

/** Runs of blocks in [from, to) that `layer` does not hold: flat [start, end) pairs. */
export function absentRuns(layer: Layer, from: number, to: number, out: number[] = []): number[] {
  for (let b = from; b < to; ) {
    if (layer.slot(b) !== SLOT_ABSENT) {
      b++;
      continue;
    }
    let e = b + 1;
    while (e < to && layer.slot(e) === SLOT_ABSENT) e++;
    out.push(b, e);
    b = e;
  }
  return out;
}
