import { StrataError } from '../../errors.js';
import { NodeFileStore } from '../../store/node-file.js';
import type { Command } from '../command.js';
import { BATCH } from '../copy-in.js';
import { line, throwIfAborted } from '../io.js';
import { formatBytes } from '../size.js';
import { openVolumeSource } from '../target.js';

export const exportCommand: Command = {
  name: 'export',
  summary: 'write the volume (or a snapshot) to a sparse raw image file',
  usage: 'export DIR[@NAME] FILE',
  details: [
    'Only extents that hold data are written; the file is then sized to the volume, so zero',
    'ranges are holes. An existing FILE is replaced. FILE may be a block device at least as',
    'large as the volume (zero ranges are then written as zeros).',
  ].join('\n'),
  positionals: { min: 2, max: 2 },
  async run({ io, args, signal, progress }) {
    const src = await openVolumeSource(args[0]!, 'export');
    try {
      const file = args[1]!;
      const extents = await src.reader.map();
      const out = await NodeFileStore.open(file, { create: true, io: 'async' });
      try {
        if (out.isBlockDevice && out.size < src.size) {
          throw new StrataError('out-of-range', `${file} holds ${out.size} bytes, smaller than the volume (${src.size} bytes).`);
        }
        // A device keeps old bytes in zero ranges, so they are written; a file gets holes.
        const toWrite = extents.filter((e) => e.data || out.isBlockDevice);
        const total = toWrite.reduce((n, e) => n + e.length, 0);
        if (!out.isBlockDevice) await out.truncate(0);
        const buf = new Uint8Array(Math.min(BATCH, Math.max(total, 1)));
        const bar = progress('export', total);
        let done = 0;
        try {
          for (const e of toWrite) {
            for (let at = e.start; at < e.start + e.length; ) {
              throwIfAborted(signal);
              const chunk = buf.subarray(0, Math.min(buf.length, e.start + e.length - at));
              if (e.data) await src.readInto(at, chunk);
              else chunk.fill(0);
              await out.write(at, chunk);
              at += chunk.length;
              done += chunk.length;
              bar.update(done);
            }
          }
        } finally {
          bar.finish();
        }
        if (!out.isBlockDevice) await out.truncate(src.size);
        await out.flush();
        line(io.stdout, `Exported ${args[0]} to ${file}: ${formatBytes(src.size)}, ${formatBytes(extents.filter((e) => e.data).reduce((n, e) => n + e.length, 0))} of data${out.isBlockDevice ? '' : ' (the rest are holes)'}.`);
      } finally {
        await out.close();
      }
      return 0;
    } finally {
      await src.close();
    }
  },
};
