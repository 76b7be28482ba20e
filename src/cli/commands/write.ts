import type { Readable } from 'node:stream';
import { StrataError } from '../../errors.js';
import type { Command } from '../command.js';
import { copyIn, inputFileSize, readFileChunks } from '../copy-in.js';
import { line, UsageError } from '../io.js';
import { formatBytes, parseSize } from '../size.js';
import { parseTarget, withVolume } from '../target.js';

export const write: Command = {
  name: 'write',
  summary: 'write a file (or standard input) into the volume at an offset',
  usage: 'write DIR --offset OFFSET FILE|-',
  details: [
    '  --offset OFFSET   byte offset (K/M/G suffixes allowed); any alignment',
    'FILE - reads standard input. The data must fit between OFFSET and the end of the volume.',
  ].join('\n'),
  options: { offset: { type: 'string' } },
  positionals: { min: 2, max: 2 },
  async run({ io, args, values, signal, progress }) {
    if (values.offset === undefined) throw new UsageError('--offset is required (use --offset 0 for the start)', 'write');
    const offset = parseSize(values.offset as string, '--offset');
    const { dir } = parseTarget(args[0]!, false, 'write');
    const file = args[1]!;
    const fromStdin = file === '-';
    const size = fromStdin ? undefined : inputFileSize(file);
    return withVolume(dir, false, async (v) => {
      if (offset > v.size) throw new StrataError('out-of-range', `--offset ${offset} is past the end of the volume (${v.size} bytes).`);
      if (size !== undefined && offset + size > v.size) {
        throw new StrataError('out-of-range', `${file} (${size} bytes) does not fit at offset ${offset}: the volume ends at ${v.size}.`);
      }
      const input = fromStdin ? stdinChunks(io.stdin ?? process.stdin) : readFileChunks(file);
      const bar = progress('write', size ?? 0);
      let n: number;
      try {
        n = await copyIn(v, offset, input, signal, size === undefined ? undefined : bar);
      } finally {
        bar.finish();
      }
      await v.flush();
      line(io.stdout, `Wrote ${formatBytes(n)} (${n} bytes) at offset ${offset} of ${dir}.`);
      return 0;
    });
  },
};

async function* stdinChunks(input: Readable | AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of input) yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
}
