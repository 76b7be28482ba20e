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
        // Two buffers: the next piece is read from the volume while the last one is written.
        const pieces: [at: number, length: number, data: boolean][] = [];
        for (const e of toWrite) {
          for (let at = e.start; at < e.start + e.length; at += BATCH) pieces.push([at, Math.min(BATCH, e.start + e.length - at), e.data]);
        }
        const bufs = [new Uint8Array(Math.min(BATCH, total)), new Uint8Array(Math.min(BATCH, total))];
        const load = async (k: number): Promise<Uint8Array> => {
          const [at, length, data] = pieces[k]!;
          const chunk = bufs[k % 2]!.subarray(0, length);
          if (data) await src.readInto(at, chunk);
          else chunk.fill(0);
          return chunk;
        };
        const bar = progress('export', total);
        let done = 0;
        try {
          let next = pieces.length > 0 ? load(0) : undefined;
          for (let k = 0; k < pieces.length; k++) {
            const chunk = await next!;
            throwIfAborted(signal);
            next = k + 1 < pieces.length ? load(k + 1) : undefined;
            // Keep a failed read-ahead from becoming an unhandled rejection if this write throws.
            next?.catch(() => {});
            await out.write(pieces[k]![0], chunk);
            done += chunk.length;
            bar.update(done);
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
