import { basename, resolve } from 'node:path';
import { StrataError } from '../../errors.js';
import { NAME } from '../../transfer/object-names.js';
import { publish } from '../../transfer/publish.js';
import { JSON_OPTION, type Command } from '../command.js';
import { OBJECT_STORE_HELP, OBJECT_STORE_OPTIONS, openObjectStoreArg } from '../object-store-arg.js';
import { Interrupted, line, UsageError } from '../io.js';
import type { Progress } from '../progress.js';
import { formatBytes } from '../size.js';
import { openVolume, parseTarget } from '../target.js';

export const publishCommand: Command = {
  name: 'publish',
  summary: 'publish the volume (or a snapshot) to an object store as deduplicated, BLAKE3-named chunks',
  usage: 'publish DIR[@NAME] --to URL [--name IMAGE] [--tag TAG] [--compress] [--token-file FILE] [--insecure] [--json]',
  details: [
    'Non-zero blocks become chunks named by BLAKE3, packed into pack objects of at most 16 MiB with',
    'an index; only chunks the store lacks are uploaded. The version becomes visible at once, when',
    'its manifest is written (last), and TAG then names it. An interrupted publish leaves finished',
    'packs in the store: run the same command again and it sends only what is missing.',
    '  --to URL        the object store: a local directory (created 0700 if missing), s3://BUCKET/PREFIX',
    '                  (credentials from the AWS variables) or http(s)://HOST:PORT/ of `serve-store`',
    '  --name IMAGE    the image name (default: the volume directory\'s name)',
    '  --tag TAG       the tag to point at the new version (default: latest)',
    '  --compress      store each chunk deflate-compressed where that saves at least 1/8',
    '  --json          { contentId, chunks, chunksUploaded, bytesUploaded, packsWritten, ... }',
    ...OBJECT_STORE_HELP,
    'Example: STRATADISK_TOKEN=$(cat ~/.stratadisk-token) stratadisk publish vm --to https://store.example:7000/',
  ].join('\n'),
  options: { to: { type: 'string' }, name: { type: 'string' }, tag: { type: 'string' }, compress: { type: 'boolean' }, ...OBJECT_STORE_OPTIONS, ...JSON_OPTION },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal, progress }) {
    const to = values.to as string | undefined;
    if (to === undefined || to === '') throw new UsageError('--to URL is required (a local directory, s3://BUCKET/PREFIX or http(s)://HOST:PORT/ of serve-store)', 'publish');
    const t = parseTarget(args[0]!, true, 'publish');
    const image = (values.name as string | undefined) ?? basename(resolve(t.dir));
    if (!NAME.test(image)) throw new UsageError(`image name ${JSON.stringify(image)} is not allowed (letters, digits, '.', '_', '-'); give one with --name`, 'publish');
    const tag = (values.tag as string | undefined) ?? 'latest';
    if (!NAME.test(tag)) throw new UsageError(`tag ${JSON.stringify(tag)} is not allowed (letters, digits, '.', '_', '-')`, 'publish');
    const v = await openVolume(t.dir, true);
    let bar: Progress | undefined;
    try {
      const info = v.info();
      const snap = t.snapshot === undefined ? undefined : v.snapshots().find((s) => s.name === t.snapshot);
      if (t.snapshot !== undefined && !snap) throw new StrataError('not-found', `No snapshot named "${t.snapshot}" in ${t.dir}. List them with \`stratadisk snapshots ${t.dir}\`.`);
      const reader = t.snapshot === undefined ? v : v.openSnapshot(t.snapshot);
      const objects = await openObjectStoreArg(to, { io, values }, 'publish', { create: true });
      try {
        const r = await publish(objects, reader, {
          image,
          tag,
          compress: values.compress === true,
          source: { volume: basename(resolve(t.dir)), snapshot: t.snapshot ?? null, layer: snap ? snap.contentId : info.active.contentId },
          signal,
          onProgress: (p) => {
            bar ??= progress('publish', p.total);
            bar.update(p.done);
          },
        }).catch((e: unknown) => {
          if (signal.aborted || (e instanceof StrataError && e.code === 'aborted')) {
            throw new Interrupted(`no new version was made in ${objects.description}; packs that were finished stay there, and running the same command again sends only what is missing`, { cause: e });
          }
          throw e;
        });
        bar?.finish();
        if (values.json) {
          line(io.stdout, JSON.stringify(r, null, 2));
        } else {
          const what = r.unchanged ? 'unchanged: it is still' : 'now';
          line(io.stdout, `Published ${args[0]} as ${image}:${tag} to ${objects.description}: ${what} version ${r.contentId}.`);
          const ratio = values.compress ? `, compressed to ${(r.compressRatio * 100).toFixed(0)}%` : '';
          line(io.stdout, `${r.chunks} chunks (${formatBytes(r.rawBytes)}); uploaded ${r.chunksUploaded} new chunks in ${r.packsWritten} packs${ratio}, ${formatBytes(r.bytesUploaded)} in all.`);
        }
        return 0;
      } finally {
        await objects.close?.();
      }
    } finally {
      bar?.finish();
      await v.close();
    }
  },
};
