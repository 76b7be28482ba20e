import { NodeDirNamespace } from '../../store/node-dir.js';
import { DEFAULT_BLOCK_SIZE, Volume } from '../../volume/volume.js';
import type { Command } from '../command.js';
import { line, UsageError } from '../io.js';
import { formatBytes, parseSize } from '../size.js';

export const create: Command = {
  name: 'create',
  summary: 'create an empty volume in a directory',
  usage: 'create DIR --size SIZE [--block-size SIZE]',
  details: [
    'Creates DIR (and its parents) if needed. Nothing proportional to SIZE is allocated.',
    '  --size SIZE         virtual size: bytes or K/M/G/T (powers of 1024), e.g. 1G',
    '  --block-size SIZE   a power of two from 4K to 1M (default 64K)',
  ].join('\n'),
  options: { size: { type: 'string' }, 'block-size': { type: 'string' } },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values }) {
    if (values.size === undefined) throw new UsageError('--size is required, e.g. --size 1G', 'create');
    const size = parseSize(values.size as string, '--size');
    const blockSize = values['block-size'] === undefined ? DEFAULT_BLOCK_SIZE : parseSize(values['block-size'] as string, '--block-size');
    const dir = args[0]!;
    const v = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size, blockSize });
    await v.close();
    line(io.stdout, `Created ${dir}: ${formatBytes(size)} (${size} bytes), ${formatBytes(blockSize)} blocks.`);
    return 0;
  },
};
