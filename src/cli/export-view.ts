import { existsSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { StrataError } from '../errors.js';
import { blocksToExtents, diffBlocks } from '../journal/diff.js';
import { exportQcow2View, qcow2VirtualSize } from '../interop/qcow2/export-view.js';
import type { VolumeReader } from '../volume/volume-reader.js';
import type { Context } from './command.js';
import { Interrupted, line, UsageError } from './io.js';
import type { Progress } from './progress.js';
import { formatBytes, parseSize } from './size.js';
import { openForPoints, parseBarePoint, parsePointTarget } from './point-target.js';

/** `DIR@seq:N`, `DIR@time:…`, `DIR@mark:…`: a point of the write log (the export command routes these here for qcow2). */
export function namesLogPoint(spec: string): boolean {
  const t = parsePointTarget(spec, 'export');
  return typeof t.point === 'object' && 'log' in t.point;
}

/**
 * `export DIR[@POINT] FILE.qcow2 [--since POINT2 --backing PREV.qcow2]`: a qcow2 image of the
 * live volume, a snapshot or a log point; with --since, incremental: only the clusters that may
 * differ from POINT2 (src/journal/diff.ts), backed by PREV.qcow2, the export of POINT2.
 */
export async function runViewExport({ io, args, signal, progress, values }: Context, format: string): Promise<number> {
  const since = values.since as string | undefined;
  const backing = values.backing as string | undefined;
  if (format !== 'qcow2') throw new UsageError('--since and --backing write a qcow2 image (FILE.qcow2 or --format qcow2)', 'export');
  if (values.chain) throw new UsageError('--chain exports the layers of a view; an incremental export (--since) is one image over the previous export', 'export');
  if ((since === undefined) !== (backing === undefined)) throw new UsageError('--since POINT and --backing PREV.qcow2 go together (PREV.qcow2 being the export of POINT)', 'export');
  const clusterSize = values['cluster-size'] === undefined ? undefined : parseSize(values['cluster-size'] as string, '--cluster-size');
  const src = parsePointTarget(args[0]!, 'export');
  const from = since === undefined ? undefined : parseBarePoint(since, '--since', 'export');
  const file = args[1]!;
  let backingName: string | undefined;
  if (backing !== undefined) {
    if (resolve(backing) === resolve(file)) throw new UsageError('--backing must be the previous export, not FILE itself', 'export');
    // stored relative to the new image, as QEMU resolves it from the image's directory
    backingName = relative(dirname(resolve(file)), resolve(backing));
  }
  const existed = existsSync(file);
  const opened = await openForPoints(src.dir);
  let bar: Progress | undefined;
  try {
    const { volume, journal } = opened;
    let reader: VolumeReader;
    if (src.point === 'live') reader = volume;
    else if ('snapshot' in src.point) reader = volume.openSnapshot(src.point.snapshot);
    else {
      if (!journal) throw new StrataError('not-found', `${src.dir} keeps no write log, so it has no point ${src.name}; name a snapshot (DIR@NAME) or the live volume.`);
      reader = journal.view(src.point.log);
    }
    let changed: { offset: number; length: number }[] | undefined;
    if (from) {
      const size = await qcow2VirtualSize(backing!);
      if (size !== Math.ceil(volume.size / 512) * 512) {
        throw new StrataError('invalid-argument', `${backing} is ${size} bytes, not the volume's ${volume.size}: it is not an export of this volume. Give the export of ${since} as --backing.`);
      }
      changed = blocksToExtents(diffBlocks(volume, journal, from, src.point).blocks, volume.blockSize, volume.size);
    }
    const img = await exportQcow2View(reader, file, {
      ...(clusterSize !== undefined ? { clusterSize } : {}),
      ...(changed ? { changed, backingFile: backingName! } : {}),
      signal,
      onProgress: (done, total) => {
        bar ??= progress('export', total);
        bar.update(done);
      },
    }).catch((e: unknown) => {
      if (signal.aborted || (e instanceof StrataError && e.code === 'aborted')) {
        throw new Interrupted(`nothing was written at ${file} (${existed ? 'the file that was there is unchanged' : 'no file was created there'})`, { cause: e });
      }
      throw e;
    });
    bar?.finish();
    const s = img.stats;
    if (changed) {
      const changedBytes = changed.reduce((n, e) => n + e.length, 0);
      line(io.stdout, `Wrote ${file}: ${formatBytes(s.dataClusters * s.clusterSize)} of data, ${s.zeroClusters} zero clusters, ${formatBytes(s.fileSize)} in all, backed by ${backingName}.`);
      line(io.stdout, `Exported the changes of ${args[0]} since ${since} as qcow2: ${changed.length} extent${changed.length === 1 ? '' : 's'}, ${formatBytes(changedBytes)} that may differ (of ${formatBytes(volume.size)}).`);
    } else {
      line(io.stdout, `Wrote ${file}: ${formatBytes(s.dataClusters * s.clusterSize)} of data, ${s.zeroClusters} zero clusters.`);
      line(io.stdout, `Exported ${args[0]} to ${file} as qcow2 (${formatBytes(volume.size)} virtual, 1 file).`);
    }
    return 0;
  } finally {
    bar?.finish();
    await opened.close();
  }
}
