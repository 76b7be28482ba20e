import { NodeDirNamespace } from '../../store/node-dir.js';
import { dirModeFor, DIR_MODE, parseFileMode } from '../../store/node-modes.js';
import { DEFAULT_BLOCK_SIZE, Volume } from '../../volume/volume.js';
import type { Command } from '../command.js';
import { redactUrl } from '../../util/redact.js';
import { line, throwIfAborted, UsageError, withKept } from '../io.js';
import { prepareVolumeDir } from '../new-volume-dir.js';
import { formatBytes, parseSize } from '../size.js';

export const create: Command = {
  name: 'create',
  summary: 'create an empty volume in a directory',
  usage: 'create DIR --size SIZE [--block-size SIZE] [--mode MODE] | create DIR --backing URL [--size SIZE] [--block-size SIZE] [--mode MODE]',
  details: [
    'DIR must be new or empty (it is created, with its parents, if missing). Nothing proportional',
    'to SIZE is allocated. A create that fails removes what it made and says so.',
    '  --size SIZE         virtual size: bytes or K/M/G/T (powers of 1024), e.g. 1G',
    '  --block-size SIZE   a power of two from 4K to 1M (default 64K)',
    '  --backing URL       base the volume on the raw image at URL (http/https, range requests):',
    '                      blocks are fetched when first read and kept (copy on read), writes stay',
    '                      local. The image is pinned by its ETag/Last-Modified and size; SIZE',
    '                      defaults to the image\'s. See `stream`, `reset` and `info`.',
    '  --mode MODE         mode of the volume\'s files: 0600 (default: the owner only), 0640 or 0660',
    '                      to share it with the group. DIR gets 0700 (0750, 0770), and every file a',
    '                      later command adds to DIR gets the same mode, whatever the umask.',
    'DIR must not be a symbolic link.',
  ].join('\n'),
  options: { size: { type: 'string' }, 'block-size': { type: 'string' }, backing: { type: 'string' }, mode: { type: 'string' } },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal }) {
    const blockSize = values['block-size'] === undefined ? DEFAULT_BLOCK_SIZE : parseSize(values['block-size'] as string, '--block-size');
    const dir = args[0]!;
    const backing = values.backing as string | undefined;
    if (backing === undefined && values.size === undefined) throw new UsageError('--size is required, e.g. --size 1G (or --backing URL)', 'create');
    const size = values.size === undefined ? undefined : parseSize(values.size as string, '--size');
    const mode = values.mode === undefined ? undefined : parseFileMode(values.mode as string);
    const target = await prepareVolumeDir(dir, mode === undefined ? DIR_MODE : dirModeFor(mode));
    let v: Volume;
    try {
      const ns = new NodeDirNamespace(dir, mode === undefined ? {} : { mode });
      v = backing !== undefined ? await Volume.createFromImage(ns, backing, { size, blockSize, remote: { signal } }) : await Volume.create(ns, { size: size!, blockSize });
      await v.close();
      throwIfAborted(signal);
    } catch (e) {
      throw withKept(e, await target.undo(), signal);
    }
    if (backing !== undefined) {
      const r = v.manifest.remote!;
      const pin = r.etag !== undefined ? `ETag ${r.etag}` : r.lastModified !== undefined ? `Last-Modified ${r.lastModified}` : 'size only (the server sends no validator)';
      line(io.stdout, `Created ${dir}: ${formatBytes(v.size)} on ${redactUrl(r.url)} (${formatBytes(r.size)} image, pinned by ${pin}), ${formatBytes(blockSize)} blocks; nothing fetched yet.`);
    } else {
      line(io.stdout, `Created ${dir}: ${formatBytes(size!)} (${size} bytes), ${formatBytes(blockSize)} blocks.`);
    }
    return 0;
  },
};
