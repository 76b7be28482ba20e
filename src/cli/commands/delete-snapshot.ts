import type { Command } from '../command.js';
import { line, UsageError } from '../io.js';
import { runConsolidation } from '../job-runner.js';
import { parseTarget } from '../target.js';

export const deleteSnapshot: Command = {
  name: 'delete-snapshot',
  summary: 'delete a snapshot (its layer is merged; other snapshots do not change); online when the volume is served',
  usage: 'delete-snapshot DIR NAME [--direction auto|down|up]',
  details: [
    'The snapshot\'s layer is collapsed into its only child by a consolidation job: "down" copies the',
    'child\'s blocks into it (a commit), "up" copies its blocks into the child; auto copies fewer.',
    'When another process holds the volume open for writing (serve-nbd), the job runs there,',
    'online, through its control socket (DIR/.stratadisk.sock), while the volume stays in use.',
    'A layer shared by two branches stays; only the name goes.',
  ].join('\n'),
  options: { direction: { type: 'string' } },
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const { io, args, values } = ctx;
    const { dir } = parseTarget(args[0]!, false, 'delete-snapshot');
    const direction = (values.direction ?? 'auto') as string;
    if (direction !== 'auto' && direction !== 'down' && direction !== 'up') throw new UsageError(`--direction must be auto, down or up, not "${direction}"`, 'delete-snapshot');
    const { where } = await runConsolidation(ctx, dir, { op: 'delete-snapshot', name: args[1]! }, direction);
    line(io.stdout, `Deleted snapshot ${args[1]} of ${dir}${where === 'remote' ? ' (online, in the process serving it)' : ''}.`);
    return 0;
  },
};
