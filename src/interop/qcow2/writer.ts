/**
 * A streaming qcow2 v3 writer. The whole image is known up front (virtual size + the map of the
 * view), so the layout is computed first and the file is then written front to back, once:
 *
 *   header cluster | L1 table | refcount table | refcount blocks | L2 tables | data (guest order)
 *
 * Every cluster of the file is used exactly once, so every refcount is 1 and the refcount
 * blocks are "1 for the first N clusters": nothing but the cluster count needs remembering.
 * L2 tables and refcount blocks are generated one at a time while writing, so memory stays
 * bounded by the I/O buffers whatever the virtual size (a 1 TiB sparse view costs nothing).
 *
 * Platform-neutral: the output is any {@link Qcow2Output} (a Store fits).
 */
import { StrataError } from '../../errors.js';
import { alignedBytes } from '../../wasm/aligned.js';
import type { Extent } from '../../volume/map.js';
import {
  COMPRESSION_ZLIB,
  CRYPT_NONE,
  ENTRY_COPIED,
  EXT_BACKING_FORMAT,
  HEADER_V3_LENGTH,
  L2_ZERO_FLAG,
  MAX_CLUSTER_BITS,
  MIN_CLUSTER_BITS,
  encodeHeaderV3,
} from './format.js';

/** What the writer reads guest data from (a VolumeReader fits). */
export interface Qcow2Source {
  readonly size: number;
  readInto(offset: number, target: Uint8Array): Promise<void>;
}

/** Where the image goes (a Store fits). Writes arrive in increasing, contiguous offsets. */
export interface Qcow2Output {
  write(offset: number, data: Uint8Array): Promise<void>;
  flush(): Promise<void>;
}

export interface WriteQcow2Options {
  /** a power of two, 512 B .. 2 MiB */
  clusterSize: number;
  /** name of the backing file as stored in the image (relative to the image), if any */
  backingFile?: string;
  /** backing format extension (default 'qcow2' when a backing file is given) */
  backingFormat?: string;
  /** called with (data bytes written, data bytes in total) */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** size of one I/O buffer (default 4 MiB, rounded to clusters) */
  chunkBytes?: number;
  /** buffers in flight: reads of the next ones overlap the write of the current (default 4) */
  buffers?: number;
}

export interface Qcow2WriteStats {
  /** bytes of the image file */
  fileSize: number;
  clusterSize: number;
  dataClusters: number;
  zeroClusters: number;
  l2Tables: number;
  /** every cluster that is not guest data */
  metadataClusters: number;
}

/** What a guest cluster becomes. Ordered: a cluster touched by several extents takes the largest. */
export const enum ClusterKind {
  /** unallocated: L2 entry 0 (falls through to the backing file, or reads zeros) */
  Absent = 0,
  /** reads as zeros, masks the backing file: the zero flag, no data */
  Zero = 1,
  /** allocated and written */
  Data = 2,
}

/** A run of guest clusters of one kind: [first cluster, end cluster (exclusive), kind]. */
export type ClusterRun = [first: number, end: number, kind: ClusterKind];

/**
 * Turn the extents of a view into sorted, merged runs of guest clusters. A cluster covered by
 * several extents (block size < cluster size, or the partial last cluster) takes the strongest
 * kind: any data makes it data; else any known-zero makes it zero; else it is absent.
 */
export function clusterRuns(extents: readonly Extent[], clusterSize: number): ClusterRun[] {
  const runs: ClusterRun[] = [];
  const push = (c0: number, c1: number, kind: ClusterKind): void => {
    const last = runs[runs.length - 1];
    if (last && c0 < last[1]) {
      // Only the cluster holding the boundary can overlap (extents are sorted and disjoint).
      if (kind > last[2]) {
        last[1] = c0;
        if (last[1] <= last[0]) runs.pop();
      } else {
        c0 = last[1];
      }
    }
    if (c1 <= c0) return;
    const prev = runs[runs.length - 1];
    if (prev && prev[2] === kind && prev[1] === c0) prev[1] = c1;
    else runs.push([c0, c1, kind]);
  };
  for (const e of extents) {
    if (e.length <= 0) continue;
    const kind = e.data ? ClusterKind.Data : e.present ? ClusterKind.Zero : ClusterKind.Absent;
    push(Math.floor(e.start / clusterSize), Math.ceil((e.start + e.length) / clusterSize), kind);
  }
  return runs;
}

/** Where everything goes; computed before the first byte is written. */
export interface Qcow2Layout {
  clusterSize: number;
  clusterBits: number;
  virtualClusters: number;
  /** entries per L2 table (= per L1 entry) */
  l2Entries: number;
  l1Size: number;
  l1Offset: number;
  l1Clusters: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  refcountBlocksOffset: number;
  refcountBlocks: number;
  /** cluster index of the first L2 table */
  l2Start: number;
  l2Tables: number;
  /** cluster index of the first data cluster */
  dataStart: number;
  dataClusters: number;
  zeroClusters: number;
  /** clusters in the file (all with refcount 1) */
  totalClusters: number;
}

/** Compute the layout; the refcount structures are iterated to a fixed point (they count themselves). */
export function planLayout(size: number, runs: readonly ClusterRun[], clusterSize: number): Qcow2Layout {
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits) || clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw new StrataError('invalid-argument', `qcow2 cluster size ${clusterSize} is not a power of two from 512 bytes to 2 MiB.`);
  }
  const l2Entries = clusterSize / 8;
  const virtualClusters = Math.ceil(size / clusterSize);
  const l1Size = Math.ceil(virtualClusters / l2Entries);
  if (l1Size * 8 > 32 << 20) {
    throw new StrataError('invalid-argument', `A ${size}-byte image needs an L1 table over 32 MiB (QEMU's limit) at ${clusterSize}-byte clusters; use a larger cluster size.`);
  }
  const l1Clusters = Math.ceil((l1Size * 8) / clusterSize);
  let dataClusters = 0;
  let zeroClusters = 0;
  let l2Tables = 0;
  let lastTable = -1;
  for (const [c0, c1, kind] of runs) {
    if (kind === ClusterKind.Absent) continue;
    if (kind === ClusterKind.Data) dataClusters += c1 - c0;
    else zeroClusters += c1 - c0;
    const t0 = Math.max(Math.floor(c0 / l2Entries), lastTable + 1);
    const t1 = Math.floor((c1 - 1) / l2Entries);
    if (t1 >= t0) l2Tables += t1 - t0 + 1;
    lastTable = Math.max(lastTable, t1);
  }
  const perBlock = clusterSize / 2; // 16-bit refcounts
  let refcountBlocks = 0;
  let refcountTableClusters = 1;
  for (;;) {
    const total = 1 + l1Clusters + refcountTableClusters + refcountBlocks + l2Tables + dataClusters;
    const rb = Math.ceil(total / perBlock);
    const rt = Math.max(1, Math.ceil((rb * 8) / clusterSize));
    if (rb === refcountBlocks && rt === refcountTableClusters) break;
    refcountBlocks = rb;
    refcountTableClusters = rt;
  }
  const l1Start = 1;
  const rtStart = l1Start + l1Clusters;
  const rbStart = rtStart + refcountTableClusters;
  const l2Start = rbStart + refcountBlocks;
  const dataStart = l2Start + l2Tables;
  return {
    clusterSize,
    clusterBits,
    virtualClusters,
    l2Entries,
    l1Size,
    l1Offset: l1Size === 0 ? 0 : l1Start * clusterSize,
    l1Clusters,
    refcountTableOffset: rtStart * clusterSize,
    refcountTableClusters,
    refcountBlocksOffset: rbStart * clusterSize,
    refcountBlocks,
    l2Start,
    l2Tables,
    dataStart,
    dataClusters,
    zeroClusters,
    totalClusters: dataStart + dataClusters,
  };
}

/** The first cluster: header, header extensions (backing format), end marker, backing file name. */
export function headerCluster(size: number, layout: Qcow2Layout, backingFile?: string, backingFormat?: string): Uint8Array {
  const out = new Uint8Array(layout.clusterSize);
  const view = new DataView(out.buffer);
  let at = HEADER_V3_LENGTH;
  const enc = new TextEncoder();
  let backingOffset = 0;
  let backingSize = 0;
  if (backingFile !== undefined) {
    const fmt = enc.encode(backingFormat ?? 'qcow2');
    view.setUint32(at, EXT_BACKING_FORMAT, false);
    view.setUint32(at + 4, fmt.length, false);
    out.set(fmt, at + 8);
    at += 8 + Math.ceil(fmt.length / 8) * 8;
  }
  at += 8; // end of the extension area: type 0, length 0
  if (backingFile !== undefined) {
    const name = enc.encode(backingFile);
    if (name.length === 0 || name.length > 1023) throw new StrataError('invalid-argument', `The backing file name must be 1 to 1023 bytes (got ${name.length}).`);
    if (at + name.length > out.length) throw new StrataError('invalid-argument', `The backing file name does not fit in a ${layout.clusterSize}-byte header cluster; use a shorter name or a larger cluster size.`);
    out.set(name, at);
    backingOffset = at;
    backingSize = name.length;
  }
  encodeHeaderV3(
    {
      backingFileOffset: backingOffset,
      backingFileSize: backingSize,
      clusterBits: layout.clusterBits,
      size,
      cryptMethod: CRYPT_NONE,
      l1Size: layout.l1Size,
      l1TableOffset: layout.l1Offset,
      refcountTableOffset: layout.refcountTableOffset,
      refcountTableClusters: layout.refcountTableClusters,
      nbSnapshots: 0,
      snapshotsOffset: 0,
      incompatibleFeatures: 0n,
      compatibleFeatures: 0n,
      autoclearFeatures: 0n,
      refcountOrder: 4,
    },
    out,
  );
  void COMPRESSION_ZLIB; // header_length 104: no compression_type field, i.e. zlib
  return out;
}

function aborted(): StrataError {
  return new StrataError('aborted', 'The qcow2 export was cancelled.');
}

/**
 * Write a qcow2 image of `source` (described by `extents`, from its map()) to `out`, which
 * should be empty. Data clusters are packed in guest order right after the metadata.
 */
export async function writeQcow2(source: Qcow2Source, extents: readonly Extent[], out: Qcow2Output, options: WriteQcow2Options): Promise<Qcow2WriteStats> {
  const cs = options.clusterSize;
  // QEMU counts disks in 512-byte sectors and would drop a partial last sector: round up (as
  // `qemu-img create` does); the padding reads as zeros.
  const size = Math.ceil(source.size / 512) * 512;
  const runs = clusterRuns(extents, cs);
  const layout = planLayout(size, runs, cs);
  const signal = options.signal;
  if (signal?.aborted) throw aborted();

  const chunk = Math.max(cs, Math.floor((options.chunkBytes ?? 4 << 20) / cs) * cs);
  const seq = new SequentialWriter(out, chunk, signal);

  // Header, L1, refcount table, refcount blocks.
  await seq.put(headerCluster(size, layout, options.backingFile, options.backingFile === undefined ? undefined : (options.backingFormat ?? 'qcow2')));
  await writeL1(seq, runs, layout);
  await seq.fill(layout.refcountTableClusters * cs, (buf, from) => {
    const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
    for (let i = from / 8; i < layout.refcountBlocks && (i * 8 - from) < buf.length; i++) {
      v.setBigUint64(i * 8 - from, BigInt(layout.refcountBlocksOffset + i * cs), false);
    }
  });
  const perBlock = cs / 2;
  for (let b = 0; b < layout.refcountBlocks; b++) {
    const buf = seq.reserve(cs);
    const v = new DataView(buf.buffer, buf.byteOffset, cs);
    const used = Math.min(perBlock, layout.totalClusters - b * perBlock);
    for (let i = 0; i < used; i++) v.setUint16(i * 2, 1, false);
    await seq.commit(cs);
  }
  await writeL2Tables(seq, runs, layout);
  await seq.drain();

  // Data, in guest order, read ahead through a pool of buffers.
  const totalData = layout.dataClusters * cs;
  let done = 0;
  options.onProgress?.(0, totalData);
  await copyData(source, runs, out, source.size, cs, layout.dataStart * cs, chunk, Math.max(2, options.buffers ?? 4), signal, (n) => {
    done += n;
    options.onProgress?.(done, totalData);
  });
  await out.flush();
  return {
    fileSize: layout.totalClusters * cs,
    clusterSize: cs,
    dataClusters: layout.dataClusters,
    zeroClusters: layout.zeroClusters,
    l2Tables: layout.l2Tables,
    metadataClusters: layout.dataStart,
  };
}

async function writeL1(seq: SequentialWriter, runs: readonly ClusterRun[], layout: Qcow2Layout): Promise<void> {
  const { clusterSize: cs, l2Entries } = layout;
  let table = 0;
  let lastTable = -1;
  let ri = 0;
  await seq.fill(layout.l1Clusters * cs, (buf, from) => {
    const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
    const first = from / 8;
    const end = first + buf.length / 8;
    // Walk the runs in step with the L1 entries of this piece, numbering tables as planned.
    for (; ri < runs.length; ri++) {
      const [c0, c1, kind] = runs[ri]!;
      if (kind === ClusterKind.Absent) continue;
      const t0 = Math.max(Math.floor(c0 / l2Entries), lastTable + 1);
      const t1 = Math.floor((c1 - 1) / l2Entries);
      for (let t = t0; t <= t1; t++) {
        if (t >= end) return; // resume this run in the next piece
        if (t >= first) v.setBigUint64((t - first) * 8, BigInt((layout.l2Start + table) * cs) | ENTRY_COPIED, false);
        table++;
        lastTable = t;
      }
    }
  });
}

async function writeL2Tables(seq: SequentialWriter, runs: readonly ClusterRun[], layout: Qcow2Layout): Promise<void> {
  const { clusterSize: cs, l2Entries } = layout;
  let nextData = layout.dataStart; // host cluster of the next data cluster
  let current = -1; // guest table being filled
  let view: DataView | undefined;
  const open = async (t: number): Promise<void> => {
    if (view) await seq.commit(cs);
    const buf = seq.reserve(cs);
    view = new DataView(buf.buffer, buf.byteOffset, cs);
    current = t;
  };
  for (const [c0, c1, kind] of runs) {
    if (kind === ClusterKind.Absent) continue;
    let c = c0;
    while (c < c1) {
      const t = Math.floor(c / l2Entries);
      if (t !== current) await open(t);
      const stop = Math.min(c1, (t + 1) * l2Entries);
      const v = view!;
      if (kind === ClusterKind.Zero) {
        for (; c < stop; c++) v.setBigUint64((c - t * l2Entries) * 8, L2_ZERO_FLAG, false);
      } else {
        for (; c < stop; c++) v.setBigUint64((c - t * l2Entries) * 8, BigInt(nextData++ * cs) | ENTRY_COPIED, false);
      }
    }
  }
  if (view) await seq.commit(cs);
}

/** Accumulates metadata into one buffer and writes it in large pieces, at increasing offsets. */
class SequentialWriter {
  private readonly buf: Uint8Array;
  private used = 0;
  private pos = 0;

  constructor(
    private readonly out: Qcow2Output,
    capacity: number,
    private readonly signal?: AbortSignal,
  ) {
    this.buf = alignedBytes(capacity);
  }

  /** A zeroed piece of `n` bytes (n <= capacity) at the current position; fill it, then commit(n). */
  reserve(n: number): Uint8Array {
    if (this.used + n > this.buf.length) throw new Error('SequentialWriter: drain before reserving');
    const piece = this.buf.subarray(this.used, this.used + n);
    piece.fill(0);
    return piece;
  }

  async commit(n: number): Promise<void> {
    this.used += n;
    if (this.used === this.buf.length) await this.drain();
    else if (this.used + n > this.buf.length) await this.drain();
  }

  async put(bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(bytes.length - at, this.buf.length - this.used);
      this.buf.set(bytes.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
      if (this.used === this.buf.length) await this.drain();
    }
  }

  /** `total` bytes produced piecewise by `produce(piece, offsetWithinTotal)` into zeroed pieces. */
  async fill(total: number, produce: (piece: Uint8Array, from: number) => void): Promise<void> {
    for (let from = 0; from < total; ) {
      if (this.used === this.buf.length) await this.drain();
      const n = Math.min(total - from, this.buf.length - this.used);
      const piece = this.buf.subarray(this.used, this.used + n);
      piece.fill(0);
      produce(piece, from);
      this.used += n;
      from += n;
    }
  }

  async drain(): Promise<void> {
    if (this.signal?.aborted) throw aborted();
    if (this.used === 0) return;
    await this.out.write(this.pos, this.buf.subarray(0, this.used));
    this.pos += this.used;
    this.used = 0;
  }
}

/** One buffer's worth of data clusters: guest pieces that land back to back in the file. */
interface Batch {
  host: number;
  bytes: number;
  /** [guest offset, length, length to read (clipped at the virtual size), offset in the buffer] */
  pieces: [number, number, number, number][];
}

function* dataBatches(runs: readonly ClusterRun[], size: number, cs: number, chunk: number, hostStart: number): Generator<Batch> {
  let batch: Batch = { host: hostStart, bytes: 0, pieces: [] };
  for (const [c0, c1, kind] of runs) {
    if (kind !== ClusterKind.Data) continue;
    let g = c0 * cs;
    const end = c1 * cs;
    while (g < end) {
      const n = Math.min(end - g, chunk - batch.bytes);
      const readable = Math.max(0, Math.min(n, size - g));
      batch.pieces.push([g, n, readable, batch.bytes]);
      batch.bytes += n;
      g += n;
      if (batch.bytes === chunk) {
        yield batch;
        batch = { host: batch.host + batch.bytes, bytes: 0, pieces: [] };
      }
    }
  }
  if (batch.bytes > 0) yield batch;
}

async function copyData(
  source: Qcow2Source,
  runs: readonly ClusterRun[],
  out: Qcow2Output,
  size: number,
  cs: number,
  hostStart: number,
  chunk: number,
  buffers: number,
  signal: AbortSignal | undefined,
  progress: (n: number) => void,
): Promise<void> {
  const iter = dataBatches(runs, size, cs, chunk, hostStart);
  const pool: Uint8Array[] = [];
  const inflight: Promise<{ batch: Batch; buf: Uint8Array }>[] = [];
  const load = (slot: number): boolean => {
    const next = iter.next();
    if (next.done) return false;
    const batch = next.value;
    const buf = (pool[slot] ??= alignedBytes(chunk));
    const p = Promise.all(
      batch.pieces.map(([g, n, readable, at]) => {
        if (readable < n) buf.fill(0, at + readable, at + n);
        return readable > 0 ? source.readInto(g, buf.subarray(at, at + readable)) : undefined;
      }),
    ).then(() => ({ batch, buf }));
    // A failure is seen when this batch is awaited; never as an unhandled rejection meanwhile.
    p.catch(() => {});
    inflight.push(p);
    return true;
  };
  for (let k = 0; k < buffers && load(k); k++);
  let slot = 0;
  try {
    while (inflight.length > 0) {
      const { batch, buf } = await inflight.shift()!;
      if (signal?.aborted) throw aborted();
      await out.write(batch.host, buf.subarray(0, batch.bytes));
      progress(batch.bytes);
      load(slot);
      slot = (slot + 1) % buffers;
    }
  } finally {
    // Let reads still running finish before the buffers and the source go away.
    await Promise.allSettled(inflight);
  }
}
