import { existsSync } from 'node:fs';
import { StrataError } from '../../errors.js';
import { blocksToExtents, diffBlocks, type DiffBasis } from '../../journal/diff.js';
import { JSON_OPTION, type Command } from '../command.js';
import { line } from '../io.js';
import { formatBytes } from '../size.js';
import { openForPoints, parsePointTarget, sameDir } from '../point-target.js';

const BASIS: Record<DiffBasis, string> = {
  same: 'the same point',
  layers: "from the layers' maps",
  log: "from the write log's index",
  'log+layers': "from the write log's index and the layers' maps, both measured from the log's base snapshot",
};

export const diffCommand: Command = {
  name: 'diff',
  summary: 'list the extents that differ between two points of a volume (changed-block tracking)',
  usage: 'diff A B [--json]',
  details: [
    'A and B name points of one volume: DIR (the live volume), DIR@SNAPSHOT, or a point of its write',
    'log: DIR@seq:N, DIR@time:ISO, DIR@mark:LABEL. Nothing is read but the layer maps and the log',
    "index, so the time grows with what changed, not with the volume. The answer is whole blocks and",
    'a superset: every byte that differs is inside a listed extent; a block written with the bytes',
    'it held is listed too. A log point against a snapshot (or the live volume, as this command',
    "opens the log read-only) is measured from the log's base snapshot, a larger superset.",
    'Exit 0 with the list (empty when nothing may differ); 2 on an error.',
    '  --json   {a, b, size, blockSize, basis, seqs, bytes, extents: [{offset, length}]}',
  ].join('\n'),
  options: { ...JSON_OPTION },
  positionals: { min: 2, max: 2 },
  async run({ io, args, values }) {
    const a = parsePointTarget(args[0]!, 'diff');
    const b = parsePointTarget(args[1]!, 'diff');
    for (const d of [a.dir, b.dir]) if (!existsSync(d)) throw new StrataError('not-found', `No volume at ${d}: the directory does not exist.`);
    if (!sameDir(a.dir, b.dir)) {
      throw new StrataError('invalid-argument', `${args[0]} and ${args[1]} are in different volumes; diff lists changes between points of one volume. Compare two volumes byte for byte with \`stratadisk compare A B\`.`);
    }
    const opened = await openForPoints(a.dir);
    try {
      const { volume, journal } = opened;
      const r = diffBlocks(volume, journal, a.point, b.point);
      const extents = blocksToExtents(r.blocks, volume.blockSize, volume.size);
      const bytes = extents.reduce((n, e) => n + e.length, 0);
      if (values.json) {
        line(io.stdout, JSON.stringify({ a: args[0], b: args[1], size: volume.size, blockSize: volume.blockSize, basis: r.basis, seqs: r.seqs, bytes, extents }));
        return 0;
      }
      const seq = (i: 0 | 1) => (r.seqs[i] === null ? '' : r.seqs[i]! < 0 ? " (the log's base)" : ` (log seq ${r.seqs[i]})`);
      line(io.stdout, `${args[0]}${seq(0)} vs ${args[1]}${seq(1)}: ${extents.length} extent${extents.length === 1 ? '' : 's'}, ${formatBytes(bytes)} may differ (of ${formatBytes(volume.size)}), ${BASIS[r.basis]}.`);
      if (extents.length > 0) line(io.stdout, `${'OFFSET'.padStart(16)} ${'LENGTH'.padStart(16)}`);
      for (const e of extents) line(io.stdout, `${String(e.offset).padStart(16)} ${String(e.length).padStart(16)}`);
      return 0;
    } finally {
      await opened.close();
    }
  },
};
