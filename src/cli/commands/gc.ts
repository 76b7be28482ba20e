import { gc } from '../../transfer/gc.js';
import { JSON_OPTION, type Command } from '../command.js';
import { OBJECT_STORE_HELP, OBJECT_STORE_OPTIONS, openObjectStoreArg } from '../object-store-arg.js';
import { line, UsageError } from '../io.js';
import { formatBytes } from '../size.js';

export const gcCommand: Command = {
  name: 'gc',
  summary: 'delete published versions beyond the newest N per image (tagged ones stay) and what only they used',
  usage: 'gc URL --keep N [--dry-run] [--token-file FILE] [--insecure] [--json]',
  details: [
    'Keeps the newest N versions of each image and every tagged version, and deletes the others,',
    'then every segment and pack no kept version uses. A chunk a kept version uses is never deleted;',
    'if a kept version cannot be read, gc deletes nothing. While a publish runs, gc stops with',
    '`locked` (publish and gc take leases in the store); a publish started during gc waits for it.',
    '  --keep N     versions to keep per image, besides the tagged ones',
    '  --dry-run    say what would be deleted, delete nothing',
    '  --json       { keptVersions, deletedVersions, deletedSegments, deletedPacks, bytesFreed, keptPacks }',
    'URL: a local directory, s3://BUCKET/PREFIX, or http(s)://HOST:PORT/ of `serve-store`.',
    ...OBJECT_STORE_HELP,
  ].join('\n'),
  options: { keep: { type: 'string' }, 'dry-run': { type: 'boolean' }, ...OBJECT_STORE_OPTIONS, ...JSON_OPTION },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal }) {
    const keepText = values.keep as string | undefined;
    if (keepText === undefined || !/^\d+$/.test(keepText)) throw new UsageError('--keep N is required (a whole number: versions to keep per image)', 'gc');
    const objects = await openObjectStoreArg(args[0]!, { io, values }, 'gc');
    try {
      const r = await gc(objects, { keep: Number(keepText), signal, dryRun: values['dry-run'] === true });
      if (values.json) line(io.stdout, JSON.stringify(r, null, 2));
      else {
        const verb = values['dry-run'] ? 'Would delete' : 'Deleted';
        line(io.stdout, `${verb} ${r.deletedVersions} versions, ${r.deletedSegments} segments and ${r.deletedPacks} packs (${formatBytes(r.bytesFreed)}) in ${objects.description}; kept ${r.keptVersions} versions using ${r.keptPacks} packs.`);
      }
      return 0;
    } finally {
      await objects.close?.();
    }
  },
};
