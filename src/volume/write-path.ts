import { StrataError } from '../errors.js';
import { layerRecord, cloneManifest } from './tree.js';
import { resolve, scanBlocks, type BlockScan } from '../wasm/index.js';
import { NO_OWNER } from './chain.js';
import { SLOT_ZERO, mapName, type Layer } from './layer.js';
import { batchFromRuns, type BlockBatch, type PutOptions } from './layer-writer.js';
import type { ByteRange, WriteEvent } from './write-observer.js';
import type { VolumeCore } from './core.js';

/**
 * The write path of a volume: writes hold their blocks exclusively (core.locks) and are counted
 * in flight; whole blocks are redirected into the active layer, partial blocks copied up first;
 * write observers see each store write as one event. `flushVolume` is the durability barrier.
 * The public methods are Volume.write, writeRanges, writeZeroes and flush (volume.ts).
 */

type WriteKind = WriteEvent['kind'];

/** Writes are processed in batches of at most this many bytes, bounding scratch memory. */
const WRITE_BATCH = 8 << 20;

/** One range of {@link Volume.writeRanges}. */
export interface WriteRange {
  offset: number;
  length: number;
}

/** See Volume.write. */
export async function writeData(core: VolumeCore, offset: number, data: Uint8Array): Promise<void> {
  core.assertWritable();
  core.checkIo(offset, data.length);
  if (data.length === 0) return;
  core.fgOps++;
  await observed(core, offset, offset + data.length, () => writeLocked(core, offset, data, 'data'));
}

/**
 * Run a write of bytes [from, to) holding its blocks exclusively, counted in flight until it
 * ends; while an observer holds the volume frozen, wait before it starts and before it
 * resolves (write-observer.ts).
 */
async function observed(core: VolumeCore, from: number, to: number, fn: () => Promise<void>): Promise<void> {
  const before = core.observers.gate;
  if (before) await before;
  // an observer may refuse a write before anything is written (a write log at its quota)
  if (core.observers.any) core.observers.admit(from, to - from);
  const bs = core.blockSize;
  const run = core.locks.run(Math.floor(from / bs), Math.ceil(to / bs), true, fn);
  const tracked = run.then(noop, noop);
  core.inflight.add(tracked);
  try {
    await run;
  } finally {
    core.inflight.delete(tracked);
  }
  const after = core.observers.gate;
  if (after) await after;
  // an observer that must see every write failed meanwhile: this write is not acknowledged
  core.assertNotStopped();
}

/** See Volume.writeRanges. */
export async function writeRanges(core: VolumeCore, ranges: readonly WriteRange[], data: Uint8Array, scan?: BlockScan): Promise<void> {
  core.assertWritable();
  let total = 0;
  let prevEnd = 0;
  for (const r of ranges) {
    core.checkIo(r.offset, r.length);
    if (r.offset < prevEnd) throw new StrataError('invalid-argument', `writeRanges: the range at ${r.offset} starts before the end of the previous one (${prevEnd}); pass ascending, non-overlapping ranges.`);
    prevEnd = r.offset + r.length;
    total += r.length;
  }
  if (total !== data.length) throw new StrataError('invalid-argument', `writeRanges: the ranges cover ${total} bytes but data holds ${data.length}.`);
  if (total === 0) return;
  if (scan && (scan.zero.length < data.length / core.blockSize || scan.hashes.length < (data.length / core.blockSize) * 16)) {
    throw new StrataError('invalid-argument', `writeRanges: the scan covers fewer blocks than data holds; pass scanBlocks(data, ${core.blockSize}).`);
  }
  core.fgOps++;
  await observed(core, ranges[0]!.offset, prevEnd, () => writeRangesLocked(core, ranges, data, scan));
}

async function writeRangesLocked(core: VolumeCore, ranges: readonly WriteRange[], data: Uint8Array, scan?: BlockScan): Promise<void> {
  const bs = core.blockSize;
  // Whole-block ranges gathered for one writeBlocks call: flat [firstBlock, count]* over data[from, pos).
  const runs: number[] = [];
  const limit = scan ? Math.max(WRITE_BATCH, data.length) : WRITE_BATCH;
  let from = 0;
  let pos = 0;
  const gathered = async () => {
    if (pos > from) await writeBlocks(core, runs, data.subarray(from, pos), from === 0 && pos === data.length ? scan : undefined, 'data');
    runs.length = 0;
  };
  for (const r of ranges) {
    if (r.length === 0) continue;
    if (r.offset % bs === 0 && r.length % bs === 0 && r.length <= limit) {
      if (pos - from + r.length > limit) {
        await gathered();
        from = pos;
      }
      const first = r.offset / bs;
      const n = r.length / bs;
      const last = runs.length - 2;
      if (last >= 0 && runs[last]! + runs[last + 1]! === first) runs[last + 1]! += n;
      else runs.push(first, n);
    } else {
      await gathered();
      await writeLocked(core, r.offset, data.subarray(pos, pos + r.length), 'data');
      from = pos + r.length;
    }
    pos += r.length;
  }
  await gathered();
}

/** See Volume.writeZeroes. */
export async function writeZeroes(core: VolumeCore, offset: number, length: number): Promise<void> {
  core.assertWritable();
  core.checkIo(offset, length);
  if (length === 0) return;
  const chunk = new Uint8Array(Math.min(length, WRITE_BATCH));
  core.fgOps++;
  await observed(core, offset, offset + length, async () => {
    for (let at = 0; at < length; at += chunk.length) {
      const n = Math.min(chunk.length, length - at);
      await writeLocked(core, offset + at, chunk.subarray(0, n), 'zero');
    }
  });
}

async function writeLocked(core: VolumeCore, offset: number, data: Uint8Array, kind: WriteKind): Promise<void> {
  // checked again under the lock: a write queued behind a mirror's switch-over must not land here
  if (core.retired !== null) throw new StrataError('closed', core.retired);
  // and closed: a write queued behind close() must not reach layers it closed
  core.assertOpen();
  const bs = core.blockSize;
  const end = offset + data.length;
  let at = offset;
  // With observers, a write that is not block-aligned but fits in one batch is one event (the
  // write log records it as one record: a view never shows half of it)
  const firstBlock = Math.floor(offset / bs);
  const blocks = Math.ceil(end / bs) - firstBlock;
  if (core.observers.any && blocks > 1 && (offset % bs !== 0 || end % bs !== 0) && blocks * bs <= WRITE_BATCH) {
    await writeAround(core, firstBlock, blocks, offset, data, kind);
    return;
  }
  // Head: a partial first block is copied up (old content + new bytes) and written whole.
  if (at % bs !== 0 || end - at < bs) {
    const block = Math.floor(at / bs);
    const blockEnd = Math.min((block + 1) * bs, end);
    await writePartial(core, block, at - block * bs, data.subarray(0, blockEnd - offset), kind);
    at = blockEnd;
  }
  // Middle: whole blocks straight from the caller's buffer, in bounded batches.
  const wholeEnd = Math.floor(end / bs) * bs;
  while (at < wholeEnd) {
    const n = Math.min(WRITE_BATCH, wholeEnd - at);
    await writeBlocks(core, [at / bs, n / bs], data.subarray(at - offset, at - offset + n), undefined, kind);
    at += n;
  }
  // Tail.
  if (at < end) {
    const block = at / bs;
    await writePartial(core, block, 0, data.subarray(at - offset), kind);
  }
}

/** Blocks [first, first+count) written as one event: the partial head and tail copied up around `data`. */
async function writeAround(core: VolumeCore, first: number, count: number, offset: number, data: Uint8Array, kind: WriteKind): Promise<void> {
  const bs = core.blockSize;
  const start = first * bs;
  const buf = new Uint8Array(count * bs);
  const end = offset + data.length;
  if (offset % bs !== 0) await core.chain.readInto(start, buf.subarray(0, bs));
  if (end % bs !== 0) {
    const tail = (first + count - 1) * bs;
    const readable = Math.min(bs, core.size - tail);
    await core.chain.readInto(tail, buf.subarray(tail - start, tail - start + readable));
  }
  buf.set(data, offset - start);
  await writeBlocks(core, [first, count], buf, undefined, kind, { offset, length: data.length });
}

async function writePartial(core: VolumeCore, block: number, within: number, bytes: Uint8Array, kind: WriteKind): Promise<void> {
  const bs = core.blockSize;
  const buf = core.copyUps.pop() ?? new Uint8Array(bs);
  try {
    await copyUpBlock(core, block, within, bytes, kind, buf);
  } finally {
    if (core.copyUps.length < 64) core.copyUps.push(buf);
  }
}

async function copyUpBlock(core: VolumeCore, block: number, within: number, bytes: Uint8Array, kind: WriteKind, buf: Uint8Array): Promise<void> {
  const bs = core.blockSize;
  const start = block * bs;
  const readable = Math.min(bs, core.size - start);
  if (readable < bs) buf.fill(0, readable);
  await core.chain.readInto(start, buf.subarray(0, readable));
  buf.set(bytes, within);
  await writeBlocks(core, [block, 1], buf, undefined, kind, { offset: start + within, length: bytes.length });
}

/**
 * Redirect-on-write of whole blocks into the active layer. `runs` is flat [firstBlock, count]*:
 * the blocks that `buf` holds back to back, in ascending order. Observers see it as one write
 * event of `kind` whose caller range is `partial` (a copied-up block), else the runs.
 */
async function writeBlocks(core: VolumeCore, runs: readonly number[], buf: Uint8Array, scanned: BlockScan | undefined, kind: WriteKind, partial?: ByteRange): Promise<void> {
  const bs = core.blockSize;
  const n = buf.length / bs;
  const active = core.active;
  const scan = scanned ?? scanBlocks(buf, bs);
  let anyZero = false;
  for (let i = 0; i < n; i++) if (scan.zero[i]) { anyZero = true; break; }
  if (anyZero) {
    if (core.owners.length < n) core.owners = new Uint16Array(Math.max(n, 256));
    for (let r = 0, i = 0; r < runs.length; i += runs[r + 1]!, r += 2) resolve(core.chain.bitmaps, runs[r]!, runs[r + 1]!, core.owners.subarray(i));
  }
  // A zero block needs no data: record "known zero" only if something would show through.
  const batch = batchFromRuns(runs, buf, scan, anyZero ? (i, block) => core.owners[i] !== NO_OWNER && active.slot(block) !== SLOT_ZERO : undefined);
  // A slot taken since the last flush is overwritten in place (only the changed bytes of a
  // copied-up block); consecutive slots over consecutive bytes of `buf` make one store write
  // (new slots are handed out in order).
  const options: PutOptions = { inPlace: 'fresh', changed: partial && n === 1 ? partialWithin(partial, runs[0]! * bs, bs) : undefined };
  if (core.observers.any) return writeObserved(core, runs, buf, batch, options, kind, partial);
  if (batch.blocks.length === 0) return;
  const put = active.stageBlocks(batch, options);
  await put.written;
  await put.commit();
}

/** writeBlocks with observers: sync ones in parallel with the layer's writes, async ones after. */
async function writeObserved(core: VolumeCore, runs: readonly number[], buf: Uint8Array, batch: BlockBatch, options: PutOptions, kind: WriteKind, partial: ByteRange | undefined): Promise<void> {
  const bs = core.blockSize;
  const ranges: ByteRange[] = [];
  if (partial) ranges.push(partial);
  else for (let r = 0; r < runs.length; r += 2) ranges.push({ offset: runs[r]! * bs, length: runs[r + 1]! * bs });
  const event: WriteEvent = {
    type: 'write',
    seq: core.observers.nextSeq(),
    kind,
    ranges,
    runs,
    data: buf,
    layer: { blocks: batch.blocks, zero: batch.zero ?? null, data: buf, dataIndex: batch.index, hashes: batch.hashes },
  };
  let ok = false;
  try {
    const put = batch.blocks.length > 0 ? core.active.stageBlocks(batch, options) : null;
    const sync = core.observers.deliverSync(event);
    // the observers' promises never reject; the layer's write is awaited after them (it may
    // reject first, and the event's buffers must outlive the sync observers' use of them)
    if (sync) await sync;
    if (put) {
      await put.written;
      await put.commit();
    }
    ok = true;
  } finally {
    core.observers.settle(event.seq, ok ? event : null);
  }
}

/** See Volume.flush. */
export async function flushVolume(core: VolumeCore): Promise<void> {
  core.assertOpen();
  if (core.readOnly) return;
  core.fgOps++;
  const before = core.observers.gate;
  if (before) await before;
  await core.flushActiveObserved();
  if (core.closed) return;
  core.assertNotStopped();
  await core.remoteBase?.flushCache();
  await compactIfWorthIt(core);
  const after = core.observers.gate;
  if (after) await after;
}

/** Compact the map logs that have grown far beyond their live entries (with no I/O in flight). */
async function compactIfWorthIt(core: VolumeCore): Promise<void> {
  const cache = core.remoteBase?.cache;
  const want = (l: Layer | undefined): l is Layer => l !== undefined && !core.closed && l.wantsCompaction(core.compactMapBytes);
  if (!want(core.active) && !want(cache)) return;
  await core.exclusive(async () => {
    for (const layer of [core.active, cache]) {
      if (want(layer)) await layer.serially(async () => (want(layer) ? compact(core, layer) : undefined));
    }
  });
}

/** Rewrite a layer's map log without its overwritten history (amortised O(1) per entry). */
async function compact(core: VolumeCore, layer: Layer): Promise<void> {
  const log = await layer.writeCompacted(core.ns);
  await core.ns.sync();
  const m = cloneManifest(core.manifest);
  layerRecord(m, layer.id).mapGen = layer.mapGen + 1;
  try {
    await core.manifestStore.commit(m);
  } catch (e) {
    await log.store.close();
    throw e;
  }
  const oldGen = layer.mapGen;
  const old = layer.adoptCompacted(log);
  await old.close();
  await core.ns.delete(mapName(layer.id, oldGen));
  await core.ns.sync();
}

function noop(): void {}

/** A copied-up block's changed bytes, relative to the block at byte `start`. */
function partialWithin(partial: ByteRange, start: number, bs: number): { from: number; to: number } {
  const from = partial.offset - start;
  return { from, to: Math.min(bs, from + partial.length) };
}
