import { listVersions } from '../../transfer/versions.js';
import { JSON_OPTION, type Command } from '../command.js';
import { OBJECT_STORE_HELP, OBJECT_STORE_OPTIONS, openObjectStoreArg } from '../object-store-arg.js';
import { line, table } from '../io.js';
import { formatBytes } from '../size.js';

export const versionsCommand: Command = {
  name: 'versions',
  summary: 'list the published versions and tags in an object store',
  usage: 'versions URL [--image IMAGE] [--token-file FILE] [--insecure] [--json]',
  details: [
    '  --image IMAGE   only this image',
    '  --json          { versions: [{ image, contentId, created, size, blockSize, chunks, storedBytes, tags }], damaged: [...] }',
    'Versions are listed newest first per image; every manifest is verified against its content ID.',
    'Exit status 1 when a version\'s manifest is missing or damaged (each is reported on stderr).',
    'URL: a local directory, s3://BUCKET/PREFIX, or http(s)://HOST:PORT/ of `serve-store`.',
    ...OBJECT_STORE_HELP,
  ].join('\n'),
  options: { image: { type: 'string' }, ...OBJECT_STORE_OPTIONS, ...JSON_OPTION },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal }) {
    const objects = await openObjectStoreArg(args[0]!, { io, values }, 'versions');
    try {
      const l = await listVersions(objects, { signal, ...(typeof values.image === 'string' ? { image: values.image } : {}) });
      const damaged = l.damaged.map((d) => ({ image: d.image, contentId: d.contentId, code: d.error.code, message: d.error.message }));
      if (values.json) {
        line(io.stdout, JSON.stringify({ versions: l.versions, damaged }, null, 2));
      } else if (l.versions.length === 0 && damaged.length === 0) {
        line(io.stdout, `No published versions in ${objects.description}.`);
      } else {
        line(io.stdout, table(['image', 'created', 'content ID', 'size', 'chunks', 'stored', 'tags'], l.versions.map((v) => [v.image, v.created, v.contentId, formatBytes(v.size), v.chunks, formatBytes(v.storedBytes), v.tags.join(',') || '-'])));
        for (const d of damaged) line(io.stderr, `stratadisk: versions: ${d.image} ${d.contentId}: ${d.code}: ${d.message}`);
      }
      return damaged.length > 0 ? 1 : 0;
    } finally {
      await objects.close?.();
    }
  },
};
