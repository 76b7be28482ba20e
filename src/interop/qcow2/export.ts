/**
 * qcow2 export of a volume (Node: writes files). Either one flattened image of a view (the live
 * volume or a snapshot), or the view's chain of layers as a chain of qcow2 files, each backed by
 * the one below through a relative file name.
 */
import { basename, dirname, join } from 'node:path';
import { StrataError } from '../../errors.js';
import { stageFile, type StagedFile } from '../../store/node-staged-file.js';
import type { Volume, VolumeReader } from '../../volume/volume.js';
import { writeQcow2, type Qcow2WriteStats } from './writer.js';

export interface ExportQcow2Options {
  /** export this snapshot instead of the live volume */
  snapshot?: string;
  /** one qcow2 per layer (base first), FILE being the top; default: one flattened image */
  chain?: boolean;
  /** power of two, 512 B .. 2 MiB; default the volume's block size clamped to 4 KiB .. 2 MiB (chain: must equal it) */
  clusterSize?: number;
  /** (bytes of data written, bytes of data in total) over all files */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface ExportedImage {
  file: string;
  /** layer id (chain exports) */
  layer?: string;
  /** backing file name as stored in the image (relative to it) */
  backingFile?: string;
  stats: Qcow2WriteStats;
}

export interface ExportQcow2Result {
  /** base first; the last one is FILE */
  images: ExportedImage[];
  dataBytes: number;
}

/** Bytes per output write (and per read-ahead buffer) of an export. */
const EXPORT_CHUNK = 32 << 20;

/** The default cluster size for a volume: its block size, clamped to 4 KiB .. 2 MiB. */
export function defaultClusterSize(blockSize: number): number {
  return Math.min(2 << 20, Math.max(4096, blockSize));
}

/**
 * Names of the files of a chain export: `<stem>.<layer-id>.qcow2` beside FILE for each lower
 * layer, FILE for the top. The stem is FILE's name without a `.qcow2` suffix.
 */
export function chainFileNames(file: string, layersTopFirst: readonly string[]): string[] {
  const dir = dirname(file);
  const stem = basename(file).replace(/\.qcow2$/i, '');
  return layersTopFirst.map((id, i) => (i === 0 ? file : join(dir, `${stem}.${id}.qcow2`)));
}

/**
 * Export `volume` (or one of its snapshots) to qcow2. Each file is written under a temporary
 * name beside it and renamed into place once every file is complete (base first), so an error or
 * a cancel leaves nothing at the target paths and files already there unchanged; the error's
 * message says so (or, should a rename fail, which files are already in place).
 */
export async function exportQcow2(volume: Volume, file: string, options: ExportQcow2Options = {}): Promise<ExportQcow2Result> {
  const clusterSize = options.clusterSize ?? defaultClusterSize(volume.blockSize);
  const plan: { reader: VolumeReader; file: string; layer?: string; backingFile?: string }[] = [];
  if (options.chain) {
    if (clusterSize !== volume.blockSize) {
      // A cluster partly held by a layer would need the rest read from the layers below it.
      throw new StrataError('invalid-argument', `A chain export needs the cluster size to equal the volume's block size (${volume.blockSize}); leave --cluster-size out, or export flattened.`);
    }
    const ids = volume.layerChain(options.snapshot);
    const names = chainFileNames(file, ids);
    for (let i = ids.length - 1; i >= 0; i--) {
      const below = names[i + 1];
      plan.push({ reader: volume.openLayer(ids[i]!), file: names[i]!, layer: ids[i]!, ...(below ? { backingFile: basename(below) } : {}) });
    }
  } else {
    plan.push({ reader: options.snapshot === undefined ? volume : volume.openSnapshot(options.snapshot), file });
  }

  const maps = await Promise.all(plan.map((p) => p.reader.map()));
  const total = maps.reduce((n, m) => n + m.reduce((k, e) => k + (e.data ? e.length : 0), 0), 0);
  const staged: StagedFile[] = [];
  const images: ExportedImage[] = [];
  let before = 0;
  try {
    for (let i = 0; i < plan.length; i++) {
      const p = plan[i]!;
      const target = await stageFile(p.file, { io: 'async' });
      staged.push(target);
      if (target.inPlace) throw new StrataError('unsupported', `${p.file} is a block device; export qcow2 to a regular file.`);
      const base = before;
      const stats = await writeQcow2(p.reader, maps[i]!, target.store, {
        clusterSize,
        // Two 32 MiB buffers: one is read while the other is written. The writer's buffers are
        // page-aligned, so the file takes them with O_DIRECT (NodeFileStore), and the device
        // takes large direct writes much faster than 4 MiB ones.
        chunkBytes: EXPORT_CHUNK,
        buffers: 2,
        ...(p.backingFile !== undefined ? { backingFile: p.backingFile, backingFormat: 'qcow2' } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        onProgress: (done) => options.onProgress?.(Math.min(total, base + done), total),
      });
      before += stats.dataClusters * clusterSize;
      images.push({ file: p.file, ...(p.layer ? { layer: p.layer } : {}), ...(p.backingFile ? { backingFile: p.backingFile } : {}), stats });
    }
    if (options.signal?.aborted) throw new StrataError('aborted', 'The qcow2 export was cancelled.');
    // Base first: an image never appears before the one it is backed by.
    for (let i = staged.length - 1; i >= 0; i--) await staged[i]!.commit();
  } catch (e) {
    await Promise.all(staged.map((f) => f.discard()));
    throw keptError(e, staged, plan.map((p) => p.file));
  }
  return { images, dataBytes: total };
}

/** `e` with a sentence saying what is at each target path now (a cancel keeps its code). */
function keptError(e: unknown, staged: StagedFile[], files: string[]): StrataError {
  const kept = files.map((f, i) => staged[i]?.keptMessage() ?? `nothing was written at ${f}`).join('; ');
  const code = e instanceof StrataError ? e.code : 'io';
  const message = e instanceof Error ? e.message : String(e);
  return new StrataError(code, `${message.replace(/\.?\s*$/, '.')} ${kept[0]!.toUpperCase()}${kept.slice(1)}.`, { cause: e });
}
