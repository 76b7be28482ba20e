/**
 * qcow2 export of any view (the live volume, a snapshot, a point of the write log), whole or
 * incremental (Node: writes a file). An incremental image holds only the clusters inside the
 * given changed extents, as the view reads them (data, or zero clusters that mask the backing
 * file), and leaves every other cluster unallocated so that it reads through to its backing
 * file: the export of the older point. `qemu-img compare` of the chain against a whole export
 * of the view passes as long as the changed extents cover every byte that differs between the
 * two points (src/journal/diff.ts answers a superset) and the backing file is that export.
 */
import { open } from 'node:fs/promises';
import { StrataError } from '../../errors.js';
import { stageFile } from '../../store/node-staged-file.js';
import type { Extent } from '../../volume/map.js';
import type { VolumeReader } from '../../volume/volume-reader.js';
import { defaultClusterSize, type ExportedImage } from './export.js';
import { QCOW2_MAGIC } from './format.js';
import { writeQcow2 } from './writer.js';

export interface ExportViewOptions {
  /** power of two, 512 B .. 2 MiB; default the block size clamped to 4 KiB .. 2 MiB */
  clusterSize?: number;
  /** incremental: only these byte ranges (ascending, not overlapping) are stored; the rest reads through to the backing file */
  changed?: readonly { offset: number; length: number }[];
  /** backing file name as stored in the image (relative to the image's directory), for an incremental export */
  backingFile?: string;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** Bytes per output write (and per read-ahead buffer). */
const EXPORT_CHUNK = 32 << 20;

/**
 * Write `reader` to `file` as qcow2, under a temporary name renamed into place when complete
 * (an error or a cancel leaves nothing at `file`, an existing file unchanged).
 */
export async function exportQcow2View(reader: VolumeReader, file: string, options: ExportViewOptions = {}): Promise<ExportedImage & { dataBytes: number }> {
  const clusterSize = options.clusterSize ?? defaultClusterSize(reader.blockSize);
  if ((options.changed === undefined) !== (options.backingFile === undefined)) {
    throw new StrataError('invalid-argument', 'An incremental qcow2 export needs both the changed extents and the backing file.');
  }
  const map = await reader.map();
  const extents = options.changed ? restrict(map, roundOut(options.changed, clusterSize, reader.size)) : map;
  const dataBytes = extents.reduce((n, e) => n + (e.data ? e.length : 0), 0);
  const target = await stageFile(file, { io: 'async' });
  try {
    if (target.inPlace) throw new StrataError('unsupported', `${file} is a block device; export qcow2 to a regular file.`);
    const stats = await writeQcow2(reader, extents, target.store, {
      clusterSize,
      chunkBytes: EXPORT_CHUNK,
      buffers: 2,
      ...(options.backingFile !== undefined ? { backingFile: options.backingFile, backingFormat: 'qcow2' } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    if (options.signal?.aborted) throw new StrataError('aborted', 'The qcow2 export was cancelled.');
    await target.commit();
    return { file, ...(options.backingFile !== undefined ? { backingFile: options.backingFile } : {}), stats, dataBytes };
  } catch (e) {
    await target.discard();
    const code = e instanceof StrataError ? e.code : 'io';
    const message = e instanceof Error ? e.message : String(e);
    throw new StrataError(code, `${message.replace(/\.?\s*$/, '.')} ${capital(target.keptMessage())}.`, { cause: e });
  }
}

/** The virtual size of the qcow2 image `file` (checks the magic); for matching a backing file. */
export async function qcow2VirtualSize(file: string): Promise<number> {
  const fh = await open(file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new StrataError(e.code === 'ENOENT' ? 'not-found' : 'io', `Cannot open ${file}: ${e.message}.`, { cause: e });
  });
  try {
    const head = Buffer.alloc(32);
    const { bytesRead } = await fh.read(head, 0, 32, 0);
    if (bytesRead < 32 || head.readUInt32BE(0) !== QCOW2_MAGIC) throw new StrataError('invalid-argument', `${file} is not a qcow2 image.`);
    return Number(head.readBigUInt64BE(24));
  } finally {
    await fh.close();
  }
}

/** Extents widened to whole clusters (so a cluster is described entirely by the view), merged. */
export function roundOut(changed: readonly { offset: number; length: number }[], clusterSize: number, size: number): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (const c of changed) {
    if (c.length <= 0) continue;
    const from = Math.floor(c.offset / clusterSize) * clusterSize;
    const to = Math.min(size, Math.ceil((c.offset + c.length) / clusterSize) * clusterSize);
    const last = out[out.length - 1];
    if (last && from <= last.offset + last.length) last.length = Math.max(last.length, to - last.offset);
    else out.push({ offset: from, length: to - from });
  }
  return out;
}

/**
 * The parts of the view's map inside `ranges` (ascending, merged). Inside them nothing may read
 * through to the backing file: what the view leaves unallocated reads as zeros there, so it
 * becomes known-zero. Outside them: nothing (unallocated, reads through).
 */
export function restrict(map: readonly Extent[], ranges: readonly { offset: number; length: number }[]): Extent[] {
  const out: Extent[] = [];
  let k = 0;
  for (const e of map) {
    const eEnd = e.start + e.length;
    while (k < ranges.length && ranges[k]!.offset + ranges[k]!.length <= e.start) k++;
    for (let r = k; r < ranges.length && ranges[r]!.offset < eEnd; r++) {
      const from = Math.max(e.start, ranges[r]!.offset);
      const to = Math.min(eEnd, ranges[r]!.offset + ranges[r]!.length);
      if (to <= from) continue;
      out.push(e.data ? { ...e, start: from, length: to - from } : { ...e, start: from, length: to - from, present: true, zero: true, data: false });
    }
  }
  return out;
}

function capital(s: string): string {
  return s.length === 0 ? s : s[0]!.toUpperCase() + s.slice(1);
}
