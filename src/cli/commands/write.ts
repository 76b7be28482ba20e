import { StrataError } from '../../errors.js';
import type { Command } from '../command.js';
import { copyIn, inputFileSize, readFileChunks } from '../copy-in.js';
import { line, UsageError, withKept } from '../io.js';
import { spoolInput } from '../input-spool.js';
import { formatBytes, parseSize } from '../size.js';
import { parseTarget, withVolume } from '../target.js';

export const write: Command = {
  name: 'write',
  summary: 'write a file (or standard input) into the volume at an offset',
  usage: 'write DIR --offset OFFSET FILE|-',
  details: [
    '  --offset OFFSET   byte offset (K/M/G suffixes allowed); any alignment',
    'FILE - reads standard input. The data must fit between OFFSET and the end of the volume;',
    'input that does not is refused before anything is written (standard input is read to its',
    'end first: up to 32 MiB in memory, the rest in a temporary file in DIR).',
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
        throw new StrataError('out-of-range', `${file} (${size} bytes) does not fit at offset ${offset}: the volume ends at ${v.size}. Nothing was written.`);
      }
      // Standard input has no size to check first: it is read to its end (bounded: see
      // input-spool.ts) and refused if too large, before anything is written.
      const spooled = fromStdin
        ? await spoolInput(io.stdin ?? process.stdin, v.size - offset, dir, `the ${formatBytes(v.size - offset)} from offset ${offset} to the end of ${dir}`, signal).catch((e: unknown) => {
            throw withKept(e, `nothing was written to ${dir}`, signal);
          })
        : undefined;
      try {
        const total = spooled?.size ?? size!;
        const input = spooled ? spooled.chunks() : readFileChunks(file);
        const bar = progress('write', total);
        let n: number;
        try {
          n = await copyIn(v, offset, input, signal, bar);
          await v.flush();
        } catch (e) {
          // copyIn writes in order and reports each write once it is done.
          const written = bar.completed;
          const kept = written === 0 ? `nothing was written to ${dir}` : `the input's first ${formatBytes(written)} (${written} bytes) were written at offset ${offset} of ${dir}, the rest was not`;
          throw withKept(e, kept, signal);
        } finally {
          bar.finish();
        }
        line(io.stdout, `Wrote ${formatBytes(n)} (${n} bytes) at offset ${offset} of ${dir}.`);
        return 0;
      } finally {
        await spooled?.close();
      }
    });
  },
};
