import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { StrataError } from '../../errors.js';
import { mirror } from '../../jobs/mirror.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import type { Command } from '../command.js';
import { line, UsageError } from '../io.js';
import { followJob, runRemote } from '../job-runner.js';
import { openVolume, parseTarget } from '../target.js';

export const mirrorCommand: Command = {
  name: 'mirror',
  summary: 'copy a volume (all layers, or flattened) to another directory, online when it is served',
  usage: 'mirror SRC DST [--flatten]',
  details: [
    'Copies every layer and snapshot of SRC into DST (a new or empty directory), or with --flatten',
    'only the live view, as a single layer. When another process serves SRC (serve-nbd), the copy',
    'runs there, through its control socket, while the volume is written: new writes are mirrored',
    'to DST, and at the end serve-nbd switches over: it serves DST from then on (clients stay',
    'connected; SRC takes no more writes). The API (`mirror()` in stratadisk) does the same for a',
    'volume opened in-process.',
    '  --flatten   copy the live view into one layer (snapshots are not copied)',
  ].join('\n'),
  options: { flatten: { type: 'boolean' } },
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const { io, args, values } = ctx;
    const { dir } = parseTarget(args[0]!, false, 'mirror');
    const dst = resolve(args[1]!);
    if (existsSync(dst) && readdirSync(dst).length > 0) throw new UsageError(`${args[1]} is not empty; mirror into a new or empty directory`, 'mirror');
    const flatten = values.flatten === true;
    let v;
    try {
      v = await openVolume(dir, false);
    } catch (e) {
      if (!(e instanceof StrataError && e.code === 'locked')) throw e;
      const info = await runRemote(ctx, dir, { op: 'mirror', target: dst, flatten }, 'mirror', e);
      line(io.stdout, `Mirrored ${dir} to ${args[1]} online (${info.progress.done} bytes copied while it was served); the server now serves ${args[1]}.`);
      return 0;
    }
    try {
      const job = mirror(v, new NodeDirNamespace(dst, { create: true }), { flatten, targetLabel: args[1]!, signal: ctx.signal });
      const info = await followJob(ctx, job, 'mirror');
      await job.target?.close();
      line(io.stdout, `Mirrored ${dir} to ${args[1]}${flatten ? ' (flattened)' : ''}: ${info.progress.done} bytes copied.`);
    } finally {
      await v.close();
    }
    return 0;
  },
};
