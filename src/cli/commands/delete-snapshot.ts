import type { Command } from '../command.js';
import { line } from '../io.js';
import { parseTarget, withVolume } from '../target.js';

export const deleteSnapshot: Command = {
  name: 'delete-snapshot',
  summary: 'delete a snapshot (its layer is merged; other snapshots do not change)',
  usage: 'delete-snapshot DIR NAME',
  positionals: { min: 2, max: 2 },
  async run({ io, args }) {
    const { dir } = parseTarget(args[0]!, false, 'delete-snapshot');
    return withVolume(dir, false, async (v) => {
      await v.deleteSnapshot(args[1]!);
      line(io.stdout, `Deleted snapshot ${args[1]} of ${dir}.`);
      return 0;
    });
  },
};
