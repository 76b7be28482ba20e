import { StrataError } from '../errors.js';
import { loadKernels } from '../wasm/index.js';
import type { ProgressStore } from './progress.js';
import type { ResyncSide } from './side.js';

/**
 * Resync by segment checksums (DRBD's checksum-based resync and online verify).
 *
 * The sides are walked in windows of consecutive segments. For each window both sides say which
 * checksums they hold valid; each side then computes its own checksum for the segments where it
 * holds none (reading them), so every segment ends with a checksum on both sides. A segment
 * moves iff its two checksums differ: those are copied src -> dst, adjacent ones coalesced into
 * one read and one write, several runs in flight. `verify` copies nothing and lists them.
 *
 * After each window the destination is flushed, then the progress record (optional) notes the
 * next segment: a rerun after a crash or a cancel continues there instead of hashing from the
 * start. The result says exactly which segments this run copied and how far it got (`next`).
 */
export interface ResyncOptions {
  verify?: boolean;
  signal?: AbortSignal;
  /** segments finished, total segments */
  onProgress?: (done: number, total: number) => void;
  /** where to keep the progress (resume after a crash); none: start from 0 every time */
  progress?: ProgressStore | null;
  /** segments per window (default 64: 64 MiB at 1 MiB segments) */
  window?: number;
  /** largest copy run in bytes (default 8 MiB; at least one segment, at most 64 MiB: memory is inFlight x this) */
  runBytes?: number;
  /** copy runs in flight (default 4) */
  inFlight?: number;
}

export interface ResyncResult {
  verify: boolean;
  /** true when every segment was compared (no cancel, no error) */
  complete: boolean;
  size: number;
  segmentSize: number;
  /** segments compared in this run */
  segmentsCompared: number;
  /** segments whose checksums differed in this run */
  segmentsDiffering: number;
  /** byte offsets of those segments, ascending */
  differingOffsets: number[];
  /** byte offsets of the segments this run copied to the destination (durable: flushed), ascending; [] in verify */
  copiedOffsets: number[];
  /** the segment this run started at (a resumed run starts after what an earlier one finished) */
  resumedFrom: number;
  /** the first segment not finished: everything below it is equal (or was listed, in verify) */
  next: number;
  /** segments copied by earlier, interrupted runs of this resync */
  copiedBefore: number;
  /** bytes that went from the source side to the destination side: data plus checksums */
  bytesSentSrcToDst: number;
  /** bytes that went from the destination side to the source side (checksums) */
  bytesSentDstToSrc: number;
  /** bytes each side read to hash */
  bytesHashedSrc: number;
  bytesHashedDst: number;
  /** segments whose checksum came from a side's valid flags (no read) */
  checksumsReused: { src: number; dst: number };
  /** the error that stopped the run (a cancel is `aborted`) */
  error?: { code: string; message: string };
}

const HASH = 16;

export async function resync(src: ResyncSide, dst: ResyncSide, options: ResyncOptions = {}): Promise<ResyncResult> {
  const verify = options.verify ?? false;
  await loadKernels();
  if (src.segmentSize !== dst.segmentSize) {
    throw new StrataError('invalid-argument', `${src.label} uses ${src.segmentSize}-byte segments and ${dst.label} ${dst.segmentSize}-byte ones; both sides of a resync must use the same segment size.`);
  }
  if (src.size !== dst.size) {
    throw new StrataError('invalid-argument', `${src.label} holds ${src.size} bytes and ${dst.label} ${dst.size}; a resync needs sides of the same size.`);
  }
  if (!verify && !dst.writable) throw new StrataError('read-only', `${dst.label} is read-only; a resync writes to it (use --verify to only compare).`);
  const seg = src.segmentSize;
  const count = Math.ceil(src.size / seg);
  const window = Math.max(1, options.window ?? 64);
  const runBytes = Math.max(seg, Math.min(64 * 1024 * 1024, options.runBytes ?? 8 * 1024 * 1024));
  const inFlight = Math.max(1, options.inFlight ?? 4);
  const progress = verify ? null : (options.progress ?? null);

  let start = 0;
  let copiedBefore = 0;
  if (progress) {
    const p = await progress.load();
    if (p && p.src === src.identity && p.dst === dst.identity && p.size === src.size && p.segmentSize === seg && p.next <= count) {
      start = p.next;
      copiedBefore = p.copiedBefore;
    }
  }
  const hashedSrc0 = src.bytesHashed;
  const hashedDst0 = dst.bytesHashed;
  const r: ResyncResult = {
    verify,
    complete: false,
    size: src.size,
    segmentSize: seg,
    segmentsCompared: 0,
    segmentsDiffering: 0,
    differingOffsets: [],
    copiedOffsets: [],
    resumedFrom: start,
    next: start,
    copiedBefore,
    bytesSentSrcToDst: 0,
    bytesSentDstToSrc: 0,
    bytesHashedSrc: 0,
    bytesHashedDst: 0,
    checksumsReused: { src: 0, dst: 0 },
  };
  // over a link, what went each way is what the link carried (JSON plus payloads)
  const wireSrc0 = src.wire ? { ...src.wire } : null;
  const wireDst0 = dst.wire ? { ...dst.wire } : null;
  const done = (): ResyncResult => {
    r.bytesHashedSrc = src.bytesHashed - hashedSrc0;
    r.bytesHashedDst = dst.bytesHashed - hashedDst0;
    if (src.wire || dst.wire) {
      r.bytesSentSrcToDst = (src.wire ? src.wire.received - wireSrc0!.received : 0) + (dst.wire ? dst.wire.sent - wireDst0!.sent : 0);
      r.bytesSentDstToSrc = (src.wire ? src.wire.sent - wireSrc0!.sent : 0) + (dst.wire ? dst.wire.received - wireDst0!.received : 0);
    }
    return r;
  };
  options.onProgress?.(start, count);
  try {
    for (let first = start; first < count; first += window) {
      if (options.signal?.aborted) throw new StrataError('aborted', 'The resync was cancelled.');
      const n = Math.min(window, count - first);
      const differ = await compareWindow(src, dst, first, n, r);
      r.segmentsCompared += n;
      r.segmentsDiffering += differ.length;
      for (const i of differ) r.differingOffsets.push(i * seg);
      if (!verify && differ.length > 0) {
        await copySegments(src, dst, differ, runBytes, inFlight, options.signal, r);
        await dst.flush();
      }
      r.next = first + n;
      if (progress && r.next < count) await progress.save({ src: src.identity, dst: dst.identity, size: src.size, segmentSize: seg, next: r.next, copiedBefore: copiedBefore + r.copiedOffsets.length });
      options.onProgress?.(r.next, count);
    }
    if (!verify) await dst.flush();
    if (progress) await progress.clear();
    r.complete = true;
  } catch (e) {
    const err = e instanceof StrataError ? e : new StrataError('io', e instanceof Error ? e.message : String(e));
    r.error = { code: err.code, message: err.message };
    // what this run copied is durable once flushed: `copiedOffsets` lists it (the rerun starts at
    // `next` and compares the unfinished window again)
    try {
      if (!verify && dst.writable) await dst.flush();
    } catch {
      // the destination failed: what it holds of the copies after `next` is unknown
      r.copiedOffsets = r.copiedOffsets.filter((o) => o < r.next * seg);
    }
  }
  r.copiedOffsets.sort((x, y) => x - y);
  return done();
}

/** The segments of [first, first+n) whose checksums differ (each side computing what it lacks). */
async function compareWindow(src: ResyncSide, dst: ResyncSide, first: number, n: number, r: ResyncResult): Promise<number[]> {
  const [a, b] = await Promise.all([src.known(first, n), dst.known(first, n)]);
  const needA: number[] = [];
  const needB: number[] = [];
  for (let k = 0; k < n; k++) {
    if (a.valid[k]) r.checksumsReused.src++;
    else needA.push(first + k);
    if (b.valid[k]) r.checksumsReused.dst++;
    else needB.push(first + k);
  }
  const [ha, hb] = await Promise.all([src.hash(needA), dst.hash(needB)]);
  for (let j = 0; j < needA.length; j++) a.hashes.set(ha.subarray(j * HASH, (j + 1) * HASH), (needA[j]! - first) * HASH);
  for (let j = 0; j < needB.length; j++) b.hashes.set(hb.subarray(j * HASH, (j + 1) * HASH), (needB[j]! - first) * HASH);
  // the destination's checksums travel to the side that compares (DRBD: the peer sends its digests)
  r.bytesSentDstToSrc += n * HASH;
  const differ: number[] = [];
  for (let k = 0; k < n; k++) {
    const o = k * HASH;
    for (let q = 0; q < HASH; q++) {
      if (a.hashes[o + q] !== b.hashes[o + q]) {
        differ.push(first + k);
        break;
      }
    }
  }
  return differ;
}

/** Copy the segments `list` (ascending) src -> dst: adjacent ones in one run, `inFlight` runs at once. */
async function copySegments(src: ResyncSide, dst: ResyncSide, list: readonly number[], runBytes: number, inFlight: number, signal: AbortSignal | undefined, r: ResyncResult): Promise<void> {
  const seg = src.segmentSize;
  const per = Math.max(1, Math.floor(runBytes / seg));
  const runs: [number, number][] = [];
  for (let k = 0; k < list.length; ) {
    let n = 1;
    while (k + n < list.length && n < per && list[k + n] === list[k]! + n) n++;
    const off = list[k]! * seg;
    runs.push([off, Math.min(n * seg, src.size - off)]);
    k += n;
  }
  let next = 0;
  let failed: unknown = null;
  const worker = async (): Promise<void> => {
    while (next < runs.length && failed === null) {
      if (signal?.aborted) throw new StrataError('aborted', 'The resync was cancelled.');
      const [off, len] = runs[next++]!;
      const data = await src.read(off, len);
      await dst.write(off, data);
      r.bytesSentSrcToDst += len;
      for (let o = off; o < off + len; o += seg) r.copiedOffsets.push(o);
    }
  };
  const ws = Array.from({ length: Math.min(inFlight, runs.length) }, () =>
    worker().catch((e: unknown) => {
      failed ??= e;
    }),
  );
  await Promise.all(ws);
  if (failed !== null) throw failed;
}
