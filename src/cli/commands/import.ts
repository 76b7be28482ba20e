import type { Command } from '../command.js';
import { copyIn, inputFileSize, readFileChunks } from '../copy-in.js';
import { line } from '../io.js';
import { StrataError } from '../../errors.js';
import { importQcow2, isQcow2File } from '../../interop/qcow2/import.js';
import { formatBytes, parseSize } from '../size.js';
import { parseTarget, withVolume } from '../target.js';

export const importCommand: Command = {
  name: 'import',
  summary: 'copy a raw or qcow2 image file into the volume (zero blocks store nothing)',
  usage: 'import DIR FILE [--block-size SIZE] [--allow-dir DIR]',
  details: [
    'raw: writes FILE over the start of the volume\'s active layer (bytes 0 to the file\'s size)',
    'and flushes. FILE must not be larger than the volume. All-zero blocks are not stored.',
    'Ctrl-C stops between 8 MiB batches; what was written so far is kept (exit 130).',
    '',
    'qcow2 (detected by its magic): DIR is created with the image\'s virtual size if it holds no',
    'volume (an existing volume must have the same size). Each backing image becomes a layer',
    'sealed by a snapshot named after its file; internal snapshots become snapshots; the top',
    'image\'s content is the live volume. Every table of the chain is checked before anything is',
    'written. A failed import into a new volume removes it; into an existing one, its snapshots',
    'are untouched but its live layer may hold part of the import (revert to undo).',
    '  --block-size SIZE   block size of a created volume (default: the cluster size, 4K..1M)',
    '  --allow-dir DIR     backing files must lie inside DIR (default: the image\'s directory)',
  ].join('\n'),
  options: { 'block-size': { type: 'string' }, 'allow-dir': { type: 'string' } },
  positionals: { min: 2, max: 2 },
  async run({ io, args, values, signal, progress }) {
    const { dir } = parseTarget(args[0]!, false, 'import');
    const file = args[1]!;
    const size = inputFileSize(file);
    if (size >= 4 && (await isQcow2File(file))) {
      const blockSize = values['block-size'] === undefined ? undefined : parseSize(values['block-size'] as string, '--block-size');
      let bar: ReturnType<typeof progress> | undefined;
      let r;
      try {
        r = await importQcow2(dir, file, {
          blockSize,
          allowDir: values['allow-dir'] as string | undefined,
          signal,
          onProgress: (p) => {
            if (p.phase !== 'copy') return;
            bar ??= progress('import', p.total);
            bar.update(p.done);
          },
        });
      } finally {
        bar?.finish();
      }
      const layers = r.chain.length;
      line(io.stdout, `Imported ${file} (qcow2, ${formatBytes(r.size)}, ${formatBytes(r.clusterSize)} clusters) into ${dir}${r.createdVolume ? ` (created, ${formatBytes(r.blockSize)} blocks)` : ''}; ${formatBytes(r.bytesCopied)} of cluster data copied.`);
      if (layers > 1) {
        line(io.stdout, `Backing chain of ${layers} images, one layer each:`);
        for (const c of r.chain) line(io.stdout, `  ${c.snapshot === null ? '(live volume)' : `snapshot ${c.snapshot}`}  <-  ${c.path} (${c.format})`);
      }
      if (r.internalSnapshots.length > 0) {
        line(io.stdout, `Internal snapshots imported as snapshots:`);
        for (const s of r.internalSnapshots) line(io.stdout, `  ${s.snapshot}${s.snapshot !== s.qcow2 ? `  (qcow2 name "${s.qcow2}")` : ''}`);
      }
      return 0;
    }
    if (values['block-size'] !== undefined || values['allow-dir'] !== undefined) {
      throw new StrataError('invalid-argument', `--block-size and --allow-dir apply to qcow2 images only; ${file} is imported as raw (create the volume first with \`stratadisk create\`).`);
    }
    return withVolume(dir, false, async (v) => {
      if (size > v.size) throw new StrataError('out-of-range', `${file} is ${size} bytes, larger than the volume (${v.size} bytes); create a larger volume.`);
      const before = v.info().allocatedBytes;
      const bar = progress('import', size);
      try {
        await copyIn(v, 0, readFileChunks(file), signal, bar);
      } finally {
        bar.finish();
      }
      await v.flush();
      const stored = v.info().allocatedBytes - before;
      line(io.stdout, `Imported ${formatBytes(size)} from ${file} into ${dir}; ${formatBytes(stored)} of new data stored (zero blocks are not stored).`);
      return 0;
    });
  },
};
