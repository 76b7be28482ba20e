import { StrataError } from '../../errors.js';
import { isNoControlSocket, requestControl } from '../../jobs/control.js';
import type { JobInfo } from '../../jobs/job.js';
import { JobJournal } from '../../jobs/job-journal.js';
import { pendingMerges, resumeJobs } from '../../jobs/resume.js';
import { NodeDirNamespace, processAlive } from '../../store/node-dir.js';
import { Volume } from '../../volume/volume.js';
import { JSON_OPTION, type Command } from '../command.js';
import { line, table, UsageError } from '../io.js';
import { followJob } from '../job-runner.js';
import { formatBytes } from '../size.js';
import { redactUrl } from '../../util/redact.js';
import { openJournaled } from '../../journal/index.js';
import { logNamespace, parseTarget } from '../target.js';

export interface JobRow {
  id: string;
  kind: string;
  /** running / paused (in the process serving the volume), or interrupted */
  state: string;
  done: number;
  total: number;
  rate: number;
  detail: string;
}

export const jobs: Command = {
  name: 'jobs',
  summary: 'list running and interrupted block jobs; resume, pause or cancel them',
  usage: 'jobs DIR [--json] [--resume] [--pause ID | --continue ID | --cancel ID]',
  details: [
    'Running jobs are asked of the process serving the volume (its control socket); interrupted',
    'ones come from the job journal in DIR and from half-collapsed layers in the manifest.',
    '  --resume        finish interrupted jobs here: half-collapsed layers, then interrupted stream',
    '                  jobs (they fetch only what is not local yet); the volume must not be open elsewhere',
    '  --pause ID, --continue ID, --cancel ID   control a job running in the serving process',
  ].join('\n'),
  options: { ...JSON_OPTION, resume: { type: 'boolean' }, pause: { type: 'string' }, continue: { type: 'string' }, cancel: { type: 'string' } },
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const { io, args, values } = ctx;
    const { dir } = parseTarget(args[0]!, false, 'jobs');
    const control = (['pause', 'continue', 'cancel'] as const).filter((k) => typeof values[k] === 'string');
    if (control.length > 1) throw new UsageError('give one of --pause, --continue, --cancel', 'jobs');
    if (control.length === 1) {
      const k = control[0]!;
      await requestControl(dir, { op: k === 'continue' ? 'resume' : k, id: values[k] as string });
      line(io.stdout, `${k === 'continue' ? 'Resumed' : k === 'pause' ? 'Paused' : 'Cancelled'} job ${String(values[k])}.`);
      return 0;
    }
    if (values.resume) {
      const { volume: v } = await openJournaled(new NodeDirNamespace(dir), { deferMerges: true, logNamespace: logNamespace(false) });
      const n = { consolidate: 0, stream: 0 };
      try {
        const dropped = await resumeJobs(v, {
          signal: ctx.signal,
          onJob: (job) => {
            if (job.kind === 'stream') n.stream++;
            else n.consolidate++;
            void followJob(ctx, job, job.kind === 'stream' ? 'stream' : 'resume').catch(() => {});
          },
        });
        const streamed = n.stream > 0 ? `, ${n.stream} interrupted stream job(s)` : '';
        line(io.stdout, `Finished ${n.consolidate} interrupted consolidation(s)${streamed} in ${dir}; ${dropped.length} journal record(s) cleared.`);
      } finally {
        await v.close();
      }
      return 0;
    }
    const rows = await listJobs(dir);
    if (values.json) line(io.stdout, JSON.stringify(rows, null, 2));
    else if (rows.length === 0) line(io.stdout, `No jobs in ${dir}.`);
    else {
      line(
        io.stdout,
        table(
          ['id', 'kind', 'state', 'progress', 'rate', 'detail'],
          rows.map((r) => [r.id, r.kind, r.state, r.total > 0 ? `${formatBytes(r.done)} / ${formatBytes(r.total)} (${Math.floor((100 * r.done) / r.total)}%)` : '-', r.rate > 0 ? `${formatBytes(Math.round(r.rate))}/s` : '-', r.detail]),
        ),
      );
    }
    return 0;
  },
};

/** Running jobs (from the serving process) and interrupted ones (journal, pending merges). */
export async function listJobs(dir: string): Promise<JobRow[]> {
  let live: JobInfo[] = [];
  try {
    const m = await requestControl(dir, { op: 'jobs' });
    if (m.type === 'jobs') live = m.jobs;
  } catch (e) {
    if (!isNoControlSocket(e)) throw e;
  }
  const rows: JobRow[] = live.map((j) => ({ id: j.id, kind: j.kind, state: j.state, done: j.progress.done, total: j.progress.total, rate: j.progress.rate, detail: 'running in the process serving the volume' }));
  const ns = new NodeDirNamespace(dir, { readOnly: true });
  const journal = await JobJournal.open(ns);
  const liveIds = new Set(live.map((j) => j.id));
  const claimed = new Set<string>();
  const v = await Volume.open(ns, { readOnly: true });
  try {
    for (const r of journal.records()) {
      if (liveIds.has(r.id)) continue;
      if (typeof r.params.lower === 'string') claimed.add(r.params.lower);
      let what = r.kind === 'consolidate' ? `${String(r.params.op)}${r.params.name ? ` ${String(r.params.name)}` : ''}: ${String(r.params.lower)} -> ${String(r.params.upper)} (${String(r.params.direction)})` : JSON.stringify(r.params);
      let done = 0;
      let total = 0;
      const p = r.kind === 'stream' ? v.info().remote : undefined;
      if (p) {
        // a stream's progress is what is local now (the cache is its checkpoint)
        done = p.localBytes;
        total = p.imageBytes;
        what = `stream ${redactUrl(p.url)}: ${formatBytes(p.remoteBytes)} still remote`;
      }
      if (r.pid !== null && r.pid !== process.pid && processAlive(r.pid)) {
        // its process still runs but has no control socket (an API user): not interrupted
        rows.push({ id: r.id, kind: r.kind, state: 'running', done, total, rate: 0, detail: `${what}; started ${r.started} by pid ${r.pid}, which is still running (control it there)` });
        continue;
      }
      rows.push({ id: r.id, kind: r.kind, state: 'interrupted', done, total, rate: 0, detail: `${what}; started ${r.started}${r.pid ? ` by pid ${r.pid}` : ''}; \`stratadisk jobs DIR --resume\` finishes it` });
    }
    for (const lower of pendingMerges(v)) {
      if (claimed.has(lower) || live.length > 0) continue;
      rows.push({ id: `merge-${lower}`, kind: 'consolidate', state: 'interrupted', done: 0, total: 0, rate: 0, detail: `layer ${lower} is half-collapsed; the next writable open (or --resume) finishes it` });
    }
  } finally {
    await v.close();
  }
  return rows;
}
