import { JSON_OPTION, type Command } from '../command.js';
import { line, table } from '../io.js';
import { formatBytes } from '../size.js';
import { parseTarget, withVolume } from '../target.js';

export const info: Command = {
  name: 'info',
  summary: 'show size, block size, layers, snapshots, allocation and content IDs',
  usage: 'info DIR [--json]',
  details: '  --json   print the whole VolumeInfo object (plus "path") as JSON',
  options: { ...JSON_OPTION },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values }) {
    const { dir } = parseTarget(args[0]!, false, 'info');
    return withVolume(dir, true, async (v) => {
      const i = v.info();
      if (values.json) {
        line(io.stdout, JSON.stringify({ path: dir, ...i }, null, 2));
        return 0;
      }
      const out = (k: string, val: string) => line(io.stdout, `${k.padEnd(12)}${val}`);
      out('volume', dir);
      out('uuid', i.uuid);
      out('size', `${formatBytes(i.size)} (${i.size} bytes)`);
      out('block size', formatBytes(i.blockSize));
      out('allocated', `${formatBytes(i.allocatedBytes)} (${i.allocatedBytes} bytes)`);
      out('layers', `${i.layers.length}; chain from the active layer down: ${i.chain.join(' -> ')}`);
      out('content ID', `${i.active.contentId} (active layer)`);
      out('snapshots', i.snapshots.length === 0 ? 'none' : i.snapshots.map((s) => s.name).join(', '));
      line(io.stdout);
      line(
        io.stdout,
        table(
          ['layer', 'parent', 'sealed', 'data blocks', 'zero blocks', 'stored', 'content ID'],
          i.layers.map((l) => [l.id, l.parent ?? '-', l.sealed ? 'yes' : 'no', l.dataBlocks, l.zeroBlocks, formatBytes(l.dataBytes), l.contentId ?? '-']),
        ),
      );
      return 0;
    });
  },
};
