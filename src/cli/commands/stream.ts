import { serveControl } from '../../jobs/control.js';
import { JobRegistry } from '../../jobs/registry.js';
import { StreamJob } from '../../jobs/stream.js';
import type { Command } from '../command.js';
import { redactUrl } from '../../util/redact.js';
import { line } from '../io.js';
import { formatBytes, parseSize } from '../size.js';
import { parseTarget, withVolume } from '../target.js';

export const stream: Command = {
  name: 'stream',
  summary: 'fetch the rest of a volume\'s remote image so that it works offline',
  usage: 'stream DIR [--rate SIZE]',
  details: [
    'For a volume created with --backing URL: fetches every block of the image that is not local',
    'yet into its cache (blocks the volume has overwritten are skipped while it has no snapshots).',
    'Ctrl-C stops after the current batch; what was fetched is kept, and a later `stream` fetches',
    'only the rest (exit 130). The job is journaled: killed or crashed, it shows as interrupted in',
    '`stratadisk jobs DIR`, and `stratadisk jobs DIR --resume` finishes it. While it runs,',
    '`stratadisk jobs DIR` lists it and --pause/--continue/--cancel ID control it.',
    '  --rate SIZE   at most SIZE bytes per second (K/M/G suffixes), e.g. --rate 10M; by default',
    '                no fixed rate: full speed, slowing to 1/16 of the time while the volume is',
    '                read or written (foreground first)',
  ].join('\n'),
  options: { rate: { type: 'string' } },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal, progress }) {
    const { dir } = parseTarget(args[0]!, false, 'stream');
    const rateLimit = values.rate === undefined ? undefined : parseSize(values.rate as string, '--rate');
    return withVolume(dir, false, async (v) => {
      const job = new StreamJob(v, { signal, rateLimit });
      const bar = progress('stream', job.info().progress.total);
      job.on((e) => bar.update(e.info.progress.done));
      // `stratadisk jobs DIR` lists the job and can pause, continue or cancel it meanwhile
      const registry = new JobRegistry();
      const control = await serveControl(v, dir, registry, { onRefused: (reason) => line(io.stderr, `stratadisk: stream: ${reason}`) }).catch(() => null);
      registry.add(job.start());
      try {
        await job.done;
      } finally {
        bar.finish();
        await control?.close();
      }
      const p = v.info().remote!;
      line(io.stdout, `Streamed ${formatBytes(job.info().progress.done)} of ${redactUrl(p.url)} into ${dir}; ${formatBytes(p.localBytes)} of ${formatBytes(p.imageBytes)} local, ${p.remoteBytes === 0 ? 'works offline' : `${formatBytes(p.remoteBytes)} still remote`}.`);
      return 0;
    });
  },
};
