/**
 * How a shadow copy is read, wherever the reader runs: for each block, the first diff area of
 * the chain (the copy's own, then each newer one) that holds it, else the volume; and for what
 * came from the volume, the re-check: once the volume read is done, look at the bits again
 * (after `settle`, which makes every bit published before now visible) and read from the diff
 * area any block that was preserved meanwhile. The writer publishes a bit before it writes the
 * volume, so a volume read that saw new data always finds the bit in the re-check.
 */
import { StrataError } from '../errors.js';
import type { Store } from '../store/store.js';

export const NO_OWNER = 0xffff;

/** The reader's view of one shadow copy: its chain of diff areas and the volume. */
export interface ChainView {
  /** the shadow copy read */
  readonly name: string;
  readonly blockSize: number;
  readonly volumeSize: number;
  readonly volume: Store;
  /** owners of [start, start+count) as flat [runStart, runLength, chainPosition | NO_OWNER]* */
  runs(start: number, count: number): Uint32Array;
  /** byte offset of block `b` in the diff area at chain position `k`, or 0 if not known (yet) */
  locate(k: number, b: number): number;
  readArea(k: number, offset: number, target: Uint8Array): Promise<void>;
  /**
   * Make sure the area's bytes [offset, offset+length) lie in records that matched their
   * checksums (verified-records.ts): undefined when they did already, else a promise.
   */
  verify(k: number, offset: number, length: number): Promise<void> | undefined;
  /** Wait until every published location is known (used when a bit is seen before its location). */
  catchUp(): Promise<void>;
  /** Make every bit published before now visible to `runs` (a fence, or a message round trip). */
  settle(): Promise<void> | undefined;
  /** Throw when the copy was deleted, dropped, or the writer is gone. */
  check(): void;
  /** Resolves when `runs` can answer (a reader still loading a diff area's map); undefined when it can now. */
  ready(): Promise<void> | undefined;
}

/** Counters of a reader, for tests and benchmarks. */
export interface ReadStats {
  fromVolume: number;
  fromDiff: number;
  /** blocks read from the volume and then found preserved by the re-check */
  rechecked: number;
}

/**
 * Read blocks [start, start+count) of the copy into `target` (exactly the bytes of those blocks
 * that lie inside the volume). `recheck: false` exists only to show the stress test can fail.
 */
export async function readBlocks(view: ChainView, start: number, count: number, target: Uint8Array, stats: ReadStats, recheck = true): Promise<void> {
  const wait = view.ready();
  if (wait) await wait;
  view.check();
  const bs = view.blockSize;
  const base = start * bs;
  const runs = view.runs(start, count);
  const pending: Promise<void>[] = [];
  const fromVolume: number[] = [];
  for (let i = 0; i < runs.length; i += 3) {
    const s = runs[i]!, n = runs[i + 1]!, owner = runs[i + 2]!;
    if (owner === NO_OWNER) {
      fromVolume.push(s, n);
      const at = s * bs;
      pending.push(view.volume.readInto(at, target.subarray(at - base, Math.min(target.length, at - base + n * bs))));
      stats.fromVolume += n;
    } else {
      pending.push(readFromArea(view, owner, s, n, base, target));
      stats.fromDiff += n;
    }
  }
  await Promise.all(pending);
  if (fromVolume.length > 0 && recheck) {
    await view.settle();
    pending.length = 0;
    for (let i = 0; i < fromVolume.length; i += 2) {
      const again = view.runs(fromVolume[i]!, fromVolume[i + 1]!);
      for (let j = 0; j < again.length; j += 3) {
        if (again[j + 2] === NO_OWNER) continue;
        stats.rechecked += again[j + 1]!;
        pending.push(readFromArea(view, again[j + 2]!, again[j]!, again[j + 1]!, base, target));
      }
    }
    await Promise.all(pending);
  }
  view.check();
}

/** Blocks [s, s+n) from chain position k, consecutive diff-area offsets coalesced into one read. */
async function readFromArea(view: ChainView, k: number, s: number, n: number, base: number, target: Uint8Array): Promise<void> {
  const bs = view.blockSize;
  let offsets = collect(view, k, s, n);
  if (!offsets) {
    await view.catchUp();
    offsets = collect(view, k, s, n);
    if (!offsets) throw new StrataError('corrupt', `Block ${s} is marked preserved in shadow area ${k} but its location was never published; reopen the shadow copy.`);
  }
  const reads: Promise<void>[] = [];
  let i = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && offsets[j] === offsets[j - 1]! + bs) j++;
    const from = (s + i) * bs - base;
    const to = Math.min(target.length, (s + j) * bs - base);
    reads.push(readVerified(view, k, offsets[i]!, target.subarray(from, to), s + i));
    i = j;
  }
  await Promise.all(reads);
}

/** One run of consecutive bytes in a diff area, holding blocks from `block` on; served only once verified. */
async function readVerified(view: ChainView, k: number, offset: number, target: Uint8Array, block: number): Promise<void> {
  const pending = view.verify(k, offset, target.length);
  if (pending) {
    await pending.catch((e: unknown) => {
      if (!(e instanceof StrataError && e.code === 'checksum-mismatch')) throw e;
      const from = block * view.blockSize;
      throw new StrataError('checksum-mismatch', `Shadow copy ${view.name} cannot be read at bytes ${from}..${from + target.length - 1}: ${e.message} The copy's preserved data is damaged there; no bytes were returned. Restore the shadow directory from a backup, or delete the copy.`, { cause: e });
    });
  }
  await view.readArea(k, offset, target);
}

function collect(view: ChainView, k: number, s: number, n: number): Float64Array | null {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const o = view.locate(k, s + i);
    if (o === 0) return null;
    out[i] = o;
  }
  return out;
}

/** A readable shadow copy: byte ranges over readBlocks. */
export class ShadowCopyReader {
  readonly stats: ReadStats = { fromVolume: 0, fromDiff: 0, rechecked: 0 };

  constructor(
    private readonly view: ChainView,
    readonly name: string,
    private readonly onClose: () => Promise<void> = async () => {},
    private readonly recheck = true,
  ) {}

  get size(): number {
    return this.view.volumeSize;
  }

  get blockSize(): number {
    return this.view.blockSize;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.checkRange(offset, length);
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.checkRange(offset, target.length);
    if (target.length === 0) return;
    const bs = this.view.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.ceil((offset + target.length) / bs);
    const spanEnd = Math.min(last * bs, this.view.volumeSize);
    if (offset === first * bs && offset + target.length === spanEnd) {
      await readBlocks(this.view, first, last - first, target, this.stats, this.recheck);
      return;
    }
    const tmp = new Uint8Array(spanEnd - first * bs);
    await readBlocks(this.view, first, last - first, tmp, this.stats, this.recheck);
    target.set(tmp.subarray(offset - first * bs, offset - first * bs + target.length));
  }

  /** Blocks [start, start+count) into target (blockSize each; the volume's last block may be short). */
  async readBlocks(start: number, count: number, target: Uint8Array): Promise<void> {
    const bs = this.view.blockSize;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 1 || start * bs + (count - 1) * bs >= this.view.volumeSize) {
      throw new StrataError('out-of-range', `Blocks ${start}..${start + count - 1} are outside shadow copy ${this.name}.`);
    }
    if (target.length !== Math.min(count * bs, this.view.volumeSize - start * bs)) {
      throw new StrataError('invalid-argument', `target must hold exactly the bytes of blocks ${start}..${start + count - 1}.`);
    }
    return readBlocks(this.view, start, count, target, this.stats, this.recheck);
  }

  close(): Promise<void> {
    return this.onClose();
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.view.volumeSize) {
      throw new StrataError('out-of-range', `Read of ${length} bytes at ${offset} is outside shadow copy ${this.name} (${this.view.volumeSize} bytes).`);
    }
  }
}

export function lostError(name: string): StrataError {
  return new StrataError('quota', `Shadow copy ${name} was dropped: its diff area filled up (policy 'drop'), or a writer in lazy durability mode crashed before flushing it. Its content is gone; delete it (give new copies a larger --max-size).`);
}
