import type { Command } from '../command.js';
import { line } from '../io.js';
import { runConsolidation } from '../job-runner.js';
import { parseTarget } from '../target.js';

export const commit: Command = {
  name: 'commit',
  summary: 'merge the active layer into its parent (online when the volume is served)',
  usage: 'commit DIR [--drop-snapshot]',
  details: [
    'Copies the active layer\'s blocks down into its parent layer, which becomes the active layer',
    '(like `qemu-img commit`). The parent is normally a snapshot: committing changes what it reads,',
    'so the command refuses unless --drop-snapshot says to delete that snapshot. It also refuses',
    'when the parent is shared by other branches. Runs online through the control socket when',
    'another process (serve-nbd) holds the volume.',
    '  --drop-snapshot   delete the snapshot(s) naming the parent layer',
  ].join('\n'),
  options: { 'drop-snapshot': { type: 'boolean' } },
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const { dir } = parseTarget(ctx.args[0]!, false, 'commit');
    const { where, info } = await runConsolidation(ctx, dir, { op: 'commit', dropSnapshot: ctx.values['drop-snapshot'] === true });
    line(ctx.io.stdout, `Committed the active layer of ${dir} into its parent (${info.progress.done} bytes copied${where === 'remote' ? ', online' : ''}).`);
    return 0;
  },
};
