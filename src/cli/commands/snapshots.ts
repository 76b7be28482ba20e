import { JSON_OPTION, type Command } from '../command.js';
import { line, table } from '../io.js';
import { parseTarget, withVolume } from '../target.js';

export const snapshots: Command = {
  name: 'snapshots',
  summary: 'list snapshots',
  usage: 'snapshots DIR [--json]',
  details: '  --json   an array of { name, layer, created, contentId, depth }',
  options: { ...JSON_OPTION },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values }) {
    const { dir } = parseTarget(args[0]!, false, 'snapshots');
    return withVolume(dir, true, async (v) => {
      const list = v.snapshots();
      if (values.json) line(io.stdout, JSON.stringify(list, null, 2));
      else if (list.length === 0) line(io.stdout, `No snapshots in ${dir}.`);
      else line(io.stdout, table(['name', 'created', 'layer', 'depth', 'content ID'], list.map((s) => [s.name, s.created, s.layer, s.depth, s.contentId ?? '-'])));
      return 0;
    });
  },
};
