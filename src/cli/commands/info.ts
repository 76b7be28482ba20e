import { JSON_OPTION, type Command } from '../command.js';
import { line, table } from '../io.js';
import { formatBytes } from '../size.js';
import { parseTarget, withVolume } from '../target.js';
import { redactUrl } from '../../util/redact.js';

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
      if (i.newerState) {
        out('WARNING', `the volume held newer state than this manifest (generation ${i.generation}) records; writable opens are refused:`);
        for (const e of i.newerState) out('', `- ${e.message}`);
        out('', `Export everything readable, that state included, with \`stratadisk salvage ${dir} OUT\`.`);
      }
      if (i.remote) {
        const r = i.remote;
        const pct = r.imageBytes > 0 ? ` (${((r.localBytes / r.imageBytes) * 100).toFixed(1)}% local)` : '';
        out('image', `${redactUrl(r.url)} (${formatBytes(r.imageBytes)}, ${r.etag !== null ? `ETag ${r.etag}` : r.lastModified !== null ? `Last-Modified ${r.lastModified}` : 'no validator'})`);
        out('local', `${formatBytes(r.localBytes)} (${r.localBytes} bytes)${pct}: ${r.cleanBlocks} blocks fetched clean, ${r.modifiedBlocks} modified`);
        out('remote', `${formatBytes(r.remoteBytes)} (${r.remoteBytes} bytes) still on the server${r.remoteBytes > 0 ? ' (`stratadisk stream` fetches it)' : ': works offline'}`);
      }
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
