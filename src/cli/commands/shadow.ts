import { existsSync, statSync } from 'node:fs';
import { StrataError } from '../../errors.js';
import { ShadowExportJob } from '../../jobs/shadow-export.js';
import { ShadowVolume } from '../../shadow/shadow-volume.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { NodeFileStore } from '../../store/node-file.js';
import { stageFile } from '../../store/node-staged-file.js';
import type { Command } from '../command.js';
import { readFileChunks, inputFileSize } from '../copy-in.js';
import { line, table, throwIfAborted, UsageError, withKept } from '../io.js';
import { formatBytes, parseSize } from '../size.js';

const SUBCOMMANDS = ['create', 'list', 'delete', 'export', 'write'] as const;

/**
 * `stratadisk shadow …`: shadow copies of a raw file or block device that stays in place.
 * The diff areas live in a directory (default VOLUME.shadows beside a file).
 */
export const shadowCommand: Command = {
  name: 'shadow',
  summary: 'shadow copies of a raw image or block device kept in place (create, list, delete, export, write)',
  usage: 'shadow create|list|delete|export|write VOLUME [NAME] [FILE] [options]',
  details: [
    'VOLUME is a raw image file or a block device; it keeps its data where it is. Its shadow',
    'copies keep, in diff areas under --shadow-dir (default VOLUME.shadows; required for a',
    'device), the old content of every block overwritten after they were taken.',
    '  shadow create VOLUME [--name NAME] [--on-full drop|fail] [--max-size SIZE] [--block-size SIZE]',
    '      take a shadow copy: O(1). --on-full: when its diff area is full, drop the copy (default)',
    '      or refuse the write. --block-size (512..1M, default 64K) applies to the first copy.',
    '  shadow list VOLUME [--json]        the copies, oldest first (dropped ones marked lost)',
    '  shadow delete VOLUME NAME          delete one copy; the others read exactly as before',
    '  shadow export VOLUME NAME FILE     the copy as a sparse raw image (convert it with',
    '                                     `qemu-img convert -f raw -O qcow2` for qcow2), written',
    '                                     beside FILE and renamed over it once complete',
    '  shadow write VOLUME FILE --offset N',
    '      write FILE into VOLUME at N through the copy-on-write path (writes that bypass',
    '      stratadisk, e.g. a VM writing the image itself, are not seen by shadow copies)',
    'Only one process may hold VOLUME\'s shadow directory for writing at a time (a lock file).',
  ].join('\n'),
  options: {
    'shadow-dir': { type: 'string' },
    name: { type: 'string' },
    'on-full': { type: 'string' },
    'max-size': { type: 'string' },
    'block-size': { type: 'string' },
    offset: { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: { min: 2, max: 4 },
  async run(ctx) {
    const { io, args, values, signal, progress } = ctx;
    const sub = args[0] as (typeof SUBCOMMANDS)[number];
    if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`unknown shadow subcommand '${args[0]}' (use ${SUBCOMMANDS.join(', ')})`, 'shadow');
    const volumePath = args[1]!;
    const want = { create: [2, 2], list: [2, 2], delete: [3, 3], export: [4, 4], write: [3, 3] }[sub];
    if (args.length < want[0]! || args.length > want[1]!) throw new UsageError(`wrong number of arguments for \`shadow ${sub}\``, 'shadow');
    if (!existsSync(volumePath)) throw new StrataError('not-found', `No volume at ${volumePath}: give a raw image file or a block device.`);
    const isDevice = statSync(volumePath).isBlockDevice();
    const dir = (values['shadow-dir'] as string | undefined) ?? (isDevice ? undefined : `${volumePath}.shadows`);
    if (!dir) throw new UsageError('a block device needs --shadow-dir DIR (on another device) for its diff areas', 'shadow');
    if (sub !== 'create' && !existsSync(dir)) throw new StrataError('not-found', `${volumePath} has no shadow copies (no ${dir}). Take one with \`stratadisk shadow create ${volumePath}\`.`);
    const blockSize = values['block-size'] !== undefined ? parseSize(values['block-size'] as string, '--block-size') : undefined;
    const sv = await ShadowVolume.open(await NodeFileStore.open(volumePath, { io: 'async' }), new NodeDirNamespace(dir, { create: sub === 'create' }), { blockSize, sharedMemory: false });
    try {
      switch (sub) {
        case 'create': {
          const onFull = (values['on-full'] as string | undefined) ?? 'drop';
          if (onFull !== 'drop' && onFull !== 'fail') throw new UsageError('--on-full must be drop or fail', 'shadow');
          const maxBytes = values['max-size'] !== undefined ? parseSize(values['max-size'] as string, '--max-size') : null;
          const c = await sv.createShadow({ name: values.name as string | undefined, onFull, maxBytes });
          line(io.stdout, `Shadow copy ${c.name} of ${volumePath} (${c.id}; when its diff area is full: ${c.onFull}${c.maxBytes ? `, limit ${formatBytes(c.maxBytes)}` : ''}).`);
          return 0;
        }
        case 'list': {
          const rows = [...sv.list().map((c) => ({ ...c, state: 'live' })), ...sv.lost().map((c) => ({ ...c, state: 'lost' }))];
          if (values.json) {
            line(io.stdout, JSON.stringify(rows));
            return 0;
          }
          if (rows.length === 0) line(io.stdout, `${volumePath} has no shadow copies.`);
          else line(io.stdout, table(['name', 'id', 'created', 'state', 'preserved', 'diff area', 'on full'], rows.map((c) => [c.name, c.id, c.created, c.state, c.preservedBlocks, formatBytes(c.diffBytes), c.onFull + (c.maxBytes ? ` > ${formatBytes(c.maxBytes)}` : '')])));
          return 0;
        }
        case 'delete':
          await sv.deleteShadow(args[2]!);
          line(io.stdout, `Deleted shadow copy ${args[2]} of ${volumePath}.`);
          return 0;
        case 'export': {
          const copy = sv.openShadow(args[2]!);
          const file = args[3]!;
          const staged = await stageFile(file, { io: 'async' });
          const out = staged.store;
          let job: ShadowExportJob | undefined;
          try {
            if (!out.resizable && out.size < copy.size) throw new StrataError('out-of-range', `${file} holds ${out.size} bytes, smaller than the copy (${copy.size} bytes).`);
            const bar = progress('export', copy.size);
            job = new ShadowExportJob(copy, out, { signal });
            const off = job.on((e) => bar.update(e.info.progress.done));
            try {
              await job.done;
            } finally {
              off();
              bar.finish();
            }
            throwIfAborted(signal);
            await staged.commit();
          } catch (e) {
            await staged.discard();
            // The job goes through the copy in order, so what reached a device is a prefix.
            const done = job?.info().progress.done ?? 0;
            throw withKept(e, staged.keptMessage(done === 0 ? '' : `the copy's first ${formatBytes(done)} (${done} bytes)`), signal);
          }
          const replaced = staged.replaces && !staged.inPlace ? ' (it replaced the file that was there)' : '';
          line(io.stdout, `Exported shadow copy ${args[2]} (${formatBytes(copy.size)}, ${formatBytes(job.dataBytes)} of data) to ${file}${replaced}.`);
          return 0;
        }
        case 'write': {
          if (values.offset === undefined) throw new UsageError('--offset is required (use --offset 0 for the start)', 'shadow');
          const offset = parseSize(values.offset as string, '--offset');
          const file = args[2]!;
          const size = inputFileSize(file);
          if (offset + size > sv.size) throw new StrataError('out-of-range', `${file} (${size} bytes) does not fit at offset ${offset}: the volume ends at ${sv.size}.`);
          let at = offset;
          for await (const chunk of readFileChunks(file)) {
            if (signal.aborted) throw new StrataError('aborted', 'Interrupted; the part written so far stays written (and preserved for the shadow copies).');
            await sv.write(at, chunk);
            at += chunk.length;
          }
          await sv.flush();
          line(io.stdout, `Wrote ${formatBytes(size)} at offset ${offset} of ${volumePath}; the shadow copies keep the old content.`);
          return 0;
        }
      }
    } finally {
      await sv.close();
    }
  },
};
