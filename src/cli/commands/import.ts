import type { Command } from '../command.js';
import { copyIn, inputFileSize, readFileChunks } from '../copy-in.js';
import { line } from '../io.js';
import { StrataError } from '../../errors.js';
import { formatBytes } from '../size.js';
import { parseTarget, withVolume } from '../target.js';

export const importCommand: Command = {
  name: 'import',
  summary: 'copy a raw image file into the volume (zero blocks store nothing)',
  usage: 'import DIR FILE',
  details: [
    'Writes FILE over the start of the volume\'s active layer (bytes 0 to the file\'s size) and',
    'flushes. FILE must not be larger than the volume. All-zero blocks are not stored.',
    'Ctrl-C stops between 8 MiB batches; what was written so far is kept (exit 130).',
  ].join('\n'),
  positionals: { min: 2, max: 2 },
  async run({ io, args, signal, progress }) {
    const { dir } = parseTarget(args[0]!, false, 'import');
    const file = args[1]!;
    const size = inputFileSize(file);
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
