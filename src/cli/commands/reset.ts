import type { Command } from '../command.js';
import { redactUrl } from '../../util/redact.js';
import { line } from '../io.js';
import { formatBytes } from '../size.js';
import { parseTarget, withVolume } from '../target.js';

export const reset: Command = {
  name: 'reset',
  summary: 'drop every change to a volume on a remote image: it reads as the image again',
  usage: 'reset DIR [--refresh [URL]]',
  details: [
    'For a volume created with --backing URL. Blocks fetched from the image stay local; snapshots',
    'are kept. With --refresh, also move to the version of the image the server holds now (or',
    'to the image at URL): every fetched block is dropped, since only fetching it again can tell',
    'whether it changed.',
    '  --refresh [URL]   re-pin the image (to URL when given) and drop the fetched blocks',
  ].join('\n'),
  options: { refresh: { type: 'boolean' } },
  positionals: { min: 1, max: 2 },
  async run({ io, args, values }) {
    const { dir } = parseTarget(args[0]!, false, 'reset');
    return withVolume(dir, false, async (v) => {
      await v.reset();
      let refreshed = false;
      if (values.refresh) refreshed = await v.remote!.refresh(args[1] ?? v.remote!.record.url);
      await v.flush();
      const p = v.info().remote!;
      const pin = p.etag ?? p.lastModified ?? 'no validator';
      line(io.stdout, `Reset ${dir} to ${redactUrl(p.url)} (${pin})${values.refresh ? (refreshed ? ', a new image version: fetched blocks dropped' : ', the image is unchanged') : ''}; ${formatBytes(p.localBytes)} of ${formatBytes(p.imageBytes)} local.`);
      return 0;
    });
  },
};
