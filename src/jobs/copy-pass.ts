import { isStrataError } from '../errors.js';
import { verifyGathered } from '../volume/verify.js';
import type { Layer } from '../volume/layer.js';
import { SLOT_ZERO } from '../volume/layer.js';
import { scanBlocks } from '../wasm/index.js';
import type { VolumeReader } from '../volume/volume.js';

/** What one block of a batch turned out to be at the source. */
export const KIND_SKIP = 0;
export const KIND_DATA = 1;
export const KIND_ZERO = 2;

/** Where a copy pass reads from: a layer's own blocks, or a volume's view (flattened). */
export interface BlockSource {
  /**
   * For each block of `batch` (ascending), set kinds[k]: KIND_DATA (bytes at buf[k*bs..], hash
   * at hashes[k*16..]), KIND_ZERO (a known-zero entry to copy) or KIND_SKIP (nothing to copy).
   */
  read(batch: readonly number[], buf: Uint8Array, hashes: Uint8Array, kinds: Uint8Array): Promise<void>;
  /**
   * True when `read` reads without the volume's lock (a layer's store directly), so it may be
   * called again under the write lock (readConsistent); a view reads under the read lock itself.
   */
  readonly unlocked?: boolean;
}

/**
 * The entries of one layer, read from its data store with consecutive slots coalesced. Each
 * block's stored checksum travels with it. With `verifyAs` (the volume's name for errors), the
 * data is also checked against it and a damaged block fails the pass with `checksum-mismatch`:
 * copies to another volume do that. Merges within a volume do not: a damaged block keeps its
 * original checksum where it moves, so reads and `check` still find it, and one bad block does
 * not stop a snapshot deletion.
 */
export function layerSource(src: Layer, verifyAs?: string): BlockSource {
  const bs = src.blockSize;
  return {
    unlocked: true,
    async read(batch, buf, hashes, kinds) {
      const reads: Promise<void>[] = [];
      const runs: number[] = [];
      for (let k = 0; k < batch.length; ) {
        const s = src.slot(batch[k]!);
        if (s < 0) {
          // absent: the writer replaced it since the list was taken (its mirror covers it)
          kinds[k] = s === SLOT_ZERO ? KIND_ZERO : KIND_SKIP;
          k++;
          continue;
        }
        // consecutive slots make one read whether or not their blocks are consecutive (a layer
        // written in order holds its blocks in ascending slots: a batch is then one read)
        let e = k + 1;
        while (e < batch.length && src.slot(batch[e]!) === s + (e - k)) e++;
        for (let q = k; q < e; q++) {
          kinds[q] = KIND_DATA;
          hashes.set(src.hash(batch[q]!)!, q * 16);
        }
        reads.push(src.data.readInto(s * bs, buf.subarray(k * bs, e * bs)));
        runs.push(k, e);
        k = e;
      }
      await Promise.all(reads);
      if (verifyAs !== undefined) verifyGathered(verifyAs, src.id, batch, runs, buf, bs, hashes);
    },
  };
}

/** A volume's view: runs of consecutive blocks read through the chain; zero blocks are skipped. */
export function viewSource(view: VolumeReader): BlockSource {
  const bs = view.blockSize;
  return {
    async read(batch, buf, hashes, kinds) {
      const reads: Promise<void>[] = [];
      for (let k = 0; k < batch.length; ) {
        let e = k + 1;
        while (e < batch.length && batch[e] === batch[k]! + (e - k)) e++;
        const start = batch[k]! * bs;
        const len = Math.min((e - k) * bs, view.size - start);
        const target = buf.subarray(k * bs, e * bs);
        if (len < target.length) target.fill(0, len);
        reads.push(view.readInto(start, target.subarray(0, len)));
        k = e;
      }
      await Promise.all(reads);
      const scan = scanBlocks(buf.subarray(0, batch.length * bs), bs);
      hashes.set(scan.hashes.subarray(0, batch.length * 16));
      for (let k = 0; k < batch.length; k++) kinds[k] = scan.zero[k] ? KIND_SKIP : KIND_DATA;
    },
  };
}

export interface CopyPassOptions {
  batchBytes: number;
  /** run under the volume's write lock */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Under the write lock: has block `b` been written since the pass began (so the copy is stale)? */
  stale(b: number): boolean;
  /** Under the write lock, after each batch's entries are set. */
  afterBatch?(copiedBytes: number): Promise<void>;
  /**
   * Overwrite the target's own slot in place where it already holds the block, instead of taking
   * a new slot (appending costs far more than overwriting cached pages). Only for a target nobody
   * reads at those blocks until the switch (a lower layer its child shadows): after a crash its
   * checksums for them are stale until the merge finishes.
   */
  overwrite?: boolean;
  /** Called between batches with the bytes handled (progress, pause, cancel, rate limit); may throw. */
  step(bytes: number): Promise<void>;
}

/**
 * Read a batch without the lock (writers keep going), as copies do. A block the writer rewrites
 * in place during that read can arrive as new bytes beside the checksum taken just before it:
 * it looks damaged although nothing is. So a `checksum-mismatch` is not believed at once: the
 * batch is read again under the write lock, where no write can interleave (a loaded CI run
 * failed a mirror of a volume being written on exactly that). Damage still there is real and
 * fails the pass; the re-read data is the current data (staleness is settled later, as always).
 */
async function readConsistent(source: BlockSource, batch: readonly number[], buf: Uint8Array, hashes: Uint8Array, kinds: Uint8Array, o: CopyPassOptions): Promise<void> {
  try {
    await source.read(batch, buf, hashes, kinds);
  } catch (e) {
    if (!source.unlocked || !isStrataError(e, 'checksum-mismatch')) throw e;
    kinds.fill(KIND_SKIP);
    await o.exclusive(() => source.read(batch, buf, hashes, kinds));
  }
}

/** Bytes per store write: several writes in flight let the thread pool copy in parallel. */
const WRITE_PIECE = 2 << 20;

/**
 * Copy blocks `todo` (ascending) from `source` into fresh slots of `dst`. The data is written
 * without the lock; the entries are set under the write lock after checking `stale`, in one
 * synchronous step, so a block written after the pass began is never overwritten by older data.
 */
export async function copyPass(source: BlockSource, dst: Layer, todo: readonly number[], o: CopyPassOptions): Promise<void> {
  const bs = dst.blockSize;
  const perBatch = Math.max(1, Math.min(Math.floor(o.batchBytes / bs), todo.length));
  // Two sets of buffers: the next batch is read while the last one is being written.
  const bufs = [0, 1].map(() => ({ buf: new Uint8Array(perBatch * bs), hashes: new Uint8Array(perBatch * 16), kinds: new Uint8Array(perBatch) }));
  const piece = Math.max(1, Math.floor(WRITE_PIECE / bs));
  // Fresh slots are consecutive while the target grows, but the blocks going there are spread
  // over the batch: they are gathered here so that each run of slots is one large write (which
  // the thread pool does while this thread does the in-place writes). One batch writes at a time.
  const staging = new Uint8Array(perBatch * bs);
  let inFlight: Promise<void> | null = null;
  try {
    for (let i = 0, n = 0; i < todo.length; i += perBatch, n++) {
      const { buf, hashes, kinds } = bufs[n & 1]!;
      const batch = todo.slice(i, i + perBatch);
      kinds.fill(KIND_SKIP);
      await readConsistent(source, batch, buf, hashes, kinds, o);
      if (inFlight) {
        const p = inFlight;
        inFlight = null;
        await p;
      }
      inFlight = writeBatch(dst, batch, buf, hashes, kinds, piece, staging, o);
    }
  } finally {
    // never leave a batch running behind the caller's back (its error, if any, is the one thrown)
    if (inFlight) await inFlight;
  }
}

/**
 * One batch through Layer.stageBlocks: new slots written now, without the lock; then, under the
 * lock, blocks written since the pass began are left out (their slots given back), the target's
 * own slots are overwritten (with `overwrite`: a slot the mirror freed since the batch began
 * could already hold another block, so only where the block still has it) and the entries set.
 */
async function writeBatch(dst: Layer, batch: number[], buf: Uint8Array, hashes: Uint8Array, kinds: Uint8Array, piece: number, staging: Uint8Array, o: CopyPassOptions): Promise<void> {
  const bs = dst.blockSize;
  const blocks: number[] = [];
  const index: number[] = [];
  const zero: number[] = [];
  for (let k = 0; k < batch.length; k++) {
    if (kinds[k] === KIND_SKIP) continue;
    blocks.push(batch[k]!);
    index.push(k);
    zero.push(kinds[k] === KIND_ZERO ? 1 : 0);
  }
  const put = dst.stageBlocks({ blocks, index, zero, data: buf, hashes }, { inPlace: o.overwrite ? 'own' : 'none', maxRun: piece, gather: staging });
  await put.written;
  await o.exclusive(async () => {
    const inPlace = await put.commit((b) => !o.stale(b));
    await o.afterBatch?.((put.fresh.length + inPlace) * bs);
  });
  await o.step(batch.length * bs);
}
