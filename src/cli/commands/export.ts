import { existsSync } from 'node:fs';
import { StrataError } from '../../errors.js';
import { exportQcow2 } from '../../interop/qcow2/export.js';
import { stageFile } from '../../store/node-staged-file.js';
import type { Command, Context } from '../command.js';
import { BATCH } from '../copy-in.js';
import { Interrupted, line, throwIfAborted, UsageError, withKept } from '../io.js';
import type { Progress } from '../progress.js';
import { formatBytes, parseSize } from '../size.js';
import { openVolume, openVolumeSource, parseTarget } from '../target.js';
import { namesLogPoint, runViewExport } from '../export-view.js';

export const exportCommand: Command = {
  name: 'export',
  summary: 'write the volume (or a snapshot) to a sparse raw or qcow2 image file',
  usage: 'export DIR[@NAME|@POINT] FILE [--format raw|qcow2] [--chain] [--cluster-size SIZE] [--since POINT --backing PREV.qcow2]',
  details: [
    'raw (the default): only extents that hold data are written; the file is then sized to the',
    'volume, so zero ranges are holes. FILE is written under a temporary name beside it and renamed',
    'into place when complete: an existing FILE is replaced only then, and a failed or interrupted',
    'export leaves nothing at FILE (an existing FILE unchanged). FILE may be a block device at least',
    'as large as the volume (written in place; zero ranges are then written as zeros).',
    'qcow2 (--format qcow2, or a FILE ending in .qcow2 when --format is not given): a qcow2 v3',
    'image; data blocks become clusters, known-zero blocks zero clusters, the rest unallocated.',
    '  --chain              one qcow2 per layer of the view: FILE is the top, each layer below is',
    '                       FILE-STEM.LAYER.qcow2 beside it, backed by the next one down',
    '  --cluster-size SIZE  512 to 2M (default: the block size, at least 4K); a chain export',
    '                       needs it equal to the block size',
    'DIR@seq:N, DIR@time:ISO, DIR@mark:LABEL export a point of the write log (qcow2).',
    '  --since POINT --backing PREV.qcow2  incremental qcow2: only the clusters that may differ',
    '                       from POINT (a snapshot name, seq:N, time:ISO, mark:LABEL; see `diff`),',
    '                       backed by PREV.qcow2, which must be the export of POINT',
  ].join('\n'),
  options: { format: { type: 'string' }, chain: { type: 'boolean' }, 'cluster-size': { type: 'string' }, since: { type: 'string' }, backing: { type: 'string' } },
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const { io, args, signal, progress, values } = ctx;
    const format = (values.format as string | undefined) ?? (/\.qcow2$/i.test(args[1]!) ? 'qcow2' : 'raw');
    if (format !== 'raw' && format !== 'qcow2') throw new UsageError(`--format must be raw or qcow2, not ${format}`, 'export');
    if (format === 'raw' && (values.chain || values['cluster-size'] !== undefined)) {
      throw new UsageError('--chain and --cluster-size apply to qcow2 exports (add --format qcow2)', 'export');
    }
    if (values.since !== undefined || values.backing !== undefined || (format === 'qcow2' && namesLogPoint(args[0]!))) return runViewExport(ctx, format);
    if (format === 'qcow2') return runQcow2(ctx);
    const src = await openVolumeSource(args[0]!, 'export');
    try {
      const file = args[1]!;
      const extents = await src.reader.map();
      const dataBytes = extents.filter((e) => e.data).reduce((n, e) => n + e.length, 0);
      const staged = await stageFile(file, { io: 'async' });
      const out = staged.store;
      let done = 0;
      let reached = 0;
      try {
        if (out.isBlockDevice && out.size < src.size) {
          throw new StrataError('out-of-range', `${file} holds ${out.size} bytes, smaller than the volume (${src.size} bytes).`);
        }
        // A device keeps old bytes in zero ranges, so they are written; a file gets holes.
        const toWrite = extents.filter((e) => e.data || out.isBlockDevice);
        const total = toWrite.reduce((n, e) => n + e.length, 0);
        // Two buffers: the next piece is read from the volume while the last one is written.
        const pieces: [at: number, length: number, data: boolean][] = [];
        for (const e of toWrite) {
          for (let at = e.start; at < e.start + e.length; at += BATCH) pieces.push([at, Math.min(BATCH, e.start + e.length - at), e.data]);
        }
        const bufs = [new Uint8Array(Math.min(BATCH, total)), new Uint8Array(Math.min(BATCH, total))];
        const load = async (k: number): Promise<Uint8Array> => {
          const [at, length, data] = pieces[k]!;
          const chunk = bufs[k % 2]!.subarray(0, length);
          if (data) await src.readInto(at, chunk);
          else chunk.fill(0);
          return chunk;
        };
        const bar = progress('export', total);
        try {
          let next = pieces.length > 0 ? load(0) : undefined;
          for (let k = 0; k < pieces.length; k++) {
            const chunk = await next!;
            throwIfAborted(signal);
            next = k + 1 < pieces.length ? load(k + 1) : undefined;
            // Keep a failed read-ahead from becoming an unhandled rejection if this write throws.
            next?.catch(() => {});
            await out.write(pieces[k]![0], chunk);
            done += chunk.length;
            reached = pieces[k]![0] + chunk.length;
            bar.update(done);
          }
        } finally {
          bar.finish();
        }
        if (!out.isBlockDevice) await out.truncate(src.size);
        throwIfAborted(signal);
        await staged.commit();
      } catch (e) {
        await staged.discard();
        // On a device every range is written in order, so what reached it is a prefix.
        throw withKept(e, staged.keptMessage(done === 0 ? '' : `the image's first ${formatBytes(reached)} (${reached} bytes)`), signal);
      }
      const replaced = staged.replaces && !staged.inPlace ? ' (it replaced the file that was there)' : '';
      line(io.stdout, `Exported ${args[0]} to ${file}${replaced}: ${formatBytes(src.size)}, ${formatBytes(dataBytes)} of data${out.isBlockDevice ? '' : ' (the rest are holes)'}.`);
      return 0;
    } finally {
      await src.close();
    }
  },
};

async function runQcow2({ io, args, signal, progress, values }: Context): Promise<number> {
  const clusterSize = values['cluster-size'] === undefined ? undefined : parseSize(values['cluster-size'] as string, '--cluster-size');
  const t = parseTarget(args[0]!, true, 'export');
  const v = await openVolume(t.dir, true);
  const file = args[1]!;
  const existed = existsSync(file);
  let bar: Progress | undefined;
  try {
    const r = await exportQcow2(v, file, {
      ...(t.snapshot !== undefined ? { snapshot: t.snapshot } : {}),
      chain: values.chain === true,
      ...(clusterSize !== undefined ? { clusterSize } : {}),
      signal,
      onProgress: (done, total) => {
        bar ??= progress('export', total);
        bar.update(done);
      },
    }).catch((e: unknown) => {
      // exportQcow2 renames nothing into place unless every file is complete and it was not
      // cancelled; other errors already say what is at the target paths.
      if (signal.aborted || (e instanceof StrataError && e.code === 'aborted')) {
        throw new Interrupted(`nothing was written at ${file}${values.chain ? ' or beside it' : ''} (${existed ? 'the file that was there is unchanged' : 'no file was created there'})`, { cause: e });
      }
      throw e;
    });
    bar?.finish();
    for (const img of r.images) {
      const backing = img.backingFile ? `, backed by ${img.backingFile}` : '';
      const layer = img.layer ? ` (layer ${img.layer})` : '';
      line(io.stdout, `Wrote ${img.file}${layer}: ${formatBytes(img.stats.dataClusters * img.stats.clusterSize)} of data, ${img.stats.zeroClusters} zero clusters${backing}.`);
    }
    line(io.stdout, `Exported ${args[0]} to ${args[1]} as qcow2 (${formatBytes(v.size)} virtual, ${r.images.length} file${r.images.length === 1 ? '' : 's'}).`);
    return 0;
  } finally {
    bar?.finish();
    await v.close();
  }
}
