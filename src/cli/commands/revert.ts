import type { Command } from '../command.js';
import { line } from '../io.js';
import { parseTarget, withVolume } from '../target.js';

export const revert: Command = {
  name: 'revert',
  summary: 'discard changes since a snapshot and continue from it (the snapshot is kept)',
  usage: 'revert DIR NAME',
  positionals: { min: 2, max: 2 },
  async run({ io, args }) {
    const { dir } = parseTarget(args[0]!, false, 'revert');
    return withVolume(dir, false, async (v) => {
      await v.revert(args[1]!);
      line(io.stdout, `Reverted ${dir} to snapshot ${args[1]}.`);
      return 0;
    });
  },
};
