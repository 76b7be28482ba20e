import type { Command } from '../command.js';
import { line } from '../io.js';
import { parseTarget, withVolume } from '../target.js';

export const snapshot: Command = {
  name: 'snapshot',
  summary: 'take a snapshot (O(1)) of the volume\'s current content',
  usage: 'snapshot DIR NAME',
  details: 'NAME: letters, digits and . _ + : - (up to 128). Read it later as DIR@NAME.',
  positionals: { min: 2, max: 2 },
  async run({ io, args }) {
    const { dir } = parseTarget(args[0]!, false, 'snapshot');
    return withVolume(dir, false, async (v) => {
      const s = await v.snapshot(args[1]!);
      line(io.stdout, `Snapshot ${s.name} of ${dir} (layer ${s.layer}, content ID ${s.contentId ?? '-'}).`);
      return 0;
    });
  },
};
