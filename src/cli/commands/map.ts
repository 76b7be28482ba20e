import { JSON_OPTION, type Command } from '../command.js';
import { line, table } from '../io.js';
import { formatBytes } from '../size.js';
import { openVolumeSource } from '../target.js';

export const map: Command = {
  name: 'map',
  summary: 'show which layer holds each range (like qemu-img map)',
  usage: 'map DIR[@NAME] [--json]',
  details: [
    '  --json   extents as in `qemu-img map --output=json`: start, length, depth (0 = top layer;',
    '           the chain length = no layer holds it), present, zero, data, and layer (its ID).',
    'The extents cover the whole volume, in order.',
  ].join('\n'),
  options: { ...JSON_OPTION },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values }) {
    const src = await openVolumeSource(args[0]!, 'map');
    try {
      const extents = await src.reader.map();
      if (values.json) {
        // One extent per line, as qemu-img prints it, and still one JSON array.
        line(io.stdout, `[${extents.map((e) => JSON.stringify(e)).join(',\n')}]`);
      } else {
        line(
          io.stdout,
          table(
            ['start', 'length', 'size', 'depth', 'present', 'zero', 'data', 'layer'],
            extents.map((e) => [e.start, e.length, formatBytes(e.length), e.depth, yn(e.present), yn(e.zero), yn(e.data), e.layer ?? '-']),
          ),
        );
      }
      return 0;
    } finally {
      await src.close();
    }
  },
};

function yn(b: boolean): string {
  return b ? 'yes' : 'no';
}
