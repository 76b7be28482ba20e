import { StrataError } from '../errors.js';
import { blocksBetweenViews, sortUnique } from '../volume/layer-diff.js';
import type { Volume } from '../volume/volume.js';
import { BASE_SNAPSHOT, type Journal } from './journal.js';
import { BASE_SEQ, type Point } from './points.js';

/**
 * Changed-block tracking: which extents may differ between two points of one volume, without
 * reading data (VMware CBT, QEMU dirty bitmaps). A point is a snapshot, a point of the write log
 * or the live volume. The answer is always a superset of what differs (never "same" for a block
 * that may differ), in whole blocks:
 *
 * - two snapshots, or a snapshot and the live volume: the blocks held by the layers above the
 *   part of the tree the two views share (src/volume/layer-diff.ts); a layer that rewrote a
 *   block with equal bytes is reported. Cost: what those layers hold.
 * - two log points: the blocks with a logged piece between them (the log's index). A block
 *   written and then written back is reported. Cost: the pieces logged between them.
 * - a log point and the live volume, log open for writing (attached, so the live volume is
 *   every logged write): the blocks logged after the point. Cost: the pieces after it.
 * - a log point and a snapshot, or the live volume of a read-only log: both sides measured
 *   from the log's base snapshot: the blocks logged up to the point, plus the blocks the layers
 *   between the base snapshot and the other side hold. A read-only log does not attest that the
 *   live volume equals its last flush (after a crash the volume may lag by a flush until a
 *   writer opens it), so the live side is taken from the layers. Cost: what was logged up to the
 *   point plus what those layers hold; a superset that grows with the log's age.
 *
 * Refused: a log point on a volume without a log (`not-found`), a log of another volume
 * (`invalid-argument`).
 */

/** One side of a diff. */
export type DiffPoint = { snapshot: string } | { log: string | Point } | 'live';

export interface DiffExtent {
  offset: number;
  length: number;
}

/** How the blocks were found: the layer maps, the log's index, both, or nothing to do (same point). */
export type DiffBasis = 'same' | 'layers' | 'log' | 'log+layers';

export interface DiffBlocks {
  /** blocks that may differ, ascending, no repeats */
  blocks: Float64Array;
  basis: DiffBasis;
  /** log seqs the log points resolved to (a, b), null for other sides */
  seqs: [number | null, number | null];
}

/** Blocks that may differ between `a` and `b` (see the file comment). */
export function diffBlocks(volume: Volume, journal: Journal | null, a: DiffPoint, b: DiffPoint): DiffBlocks {
  if (journal && journal.volume !== volume) throw new StrataError('invalid-argument', 'That write log belongs to another open volume; diff the points of one volume with its own log.');
  const seqA = isLog(a) ? resolve(journal, a.log) : null;
  const seqB = isLog(b) ? resolve(journal, b.log) : null;
  const seqs: [number | null, number | null] = [seqA, seqB];
  // two log points: the log's index between them
  if (seqA !== null && seqB !== null) {
    if (seqA === seqB) return { blocks: new Float64Array(0), basis: 'same', seqs };
    return { blocks: Float64Array.from(journal!.blocksChanged(Math.min(seqA, seqB), Math.max(seqA, seqB))), basis: 'log', seqs };
  }
  // no log point: the layer maps
  if (seqA === null && seqB === null) {
    const va = layerView(a);
    const vb = layerView(b);
    if (va === vb) return { blocks: new Float64Array(0), basis: 'same', seqs };
    return { blocks: blocksBetweenViews(volume, va, vb), basis: 'layers', seqs };
  }
  // a log point and a snapshot or the live volume
  const seq = (seqA ?? seqB)!;
  const other = seqA === null ? a : b;
  if (other === 'live' && !journal!.readOnly) {
    return { blocks: Float64Array.from(journal!.blocksChanged(seq)), basis: 'log', seqs };
  }
  if (!volume.snapshots().some((s) => s.name === BASE_SNAPSHOT)) {
    throw new StrataError('not-found', `The snapshot ${BASE_SNAPSHOT}, the base of the write log, is gone: a log point cannot be compared with a snapshot or the live volume.`);
  }
  const logged = journal!.blocksChanged(BASE_SEQ, seq);
  const layered = blocksBetweenViews(volume, BASE_SNAPSHOT, layerView(other));
  const all = new Float64Array(logged.length + layered.length);
  all.set(logged);
  all.set(layered, logged.length);
  return { blocks: sortUnique(all), basis: 'log+layers', seqs };
}

/** Extents that may differ between `a` and `b`, ascending and merged (whole blocks, the last one cut at the volume's end). */
export function diffPoints(volume: Volume, journal: Journal | null, a: DiffPoint, b: DiffPoint): DiffExtent[] {
  return blocksToExtents(diffBlocks(volume, journal, a, b).blocks, volume.blockSize, volume.size);
}

/** Ascending blocks to merged byte extents, cut at `size`. */
export function blocksToExtents(blocks: ArrayLike<number>, blockSize: number, size: number): DiffExtent[] {
  const out: DiffExtent[] = [];
  for (let i = 0; i < blocks.length; ) {
    let j = i + 1;
    while (j < blocks.length && blocks[j] === blocks[j - 1]! + 1) j++;
    const offset = blocks[i]! * blockSize;
    const end = Math.min(size, (blocks[j - 1]! + 1) * blockSize);
    if (end > offset) out.push({ offset, length: end - offset });
    i = j;
  }
  return out;
}

function isLog(p: DiffPoint): p is { log: string | Point } {
  return typeof p === 'object' && 'log' in p;
}

function layerView(p: DiffPoint): string | undefined {
  return p === 'live' ? undefined : (p as { snapshot: string }).snapshot;
}

function resolve(journal: Journal | null, point: string | Point): number {
  if (!journal) {
    const shown = typeof point === 'string' ? point : JSON.stringify(point);
    throw new StrataError('not-found', `This volume keeps no write log, so it has no point ${shown}; start one with \`stratadisk journal enable DIR\`, or compare snapshots (DIR@NAME).`);
  }
  return journal.resolve(point);
}
