import { existsSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { StrataError } from '../../errors.js';
import { JOURNAL_REQUIREMENT, disableJournal, enableJournal, restoreTo } from '../../journal/index.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import type { StoreNamespace } from '../../store/store.js';
import { Volume } from '../../volume/volume.js';
import { JSON_OPTION, type Command } from '../command.js';
import { Interrupted, line, table, UsageError } from '../io.js';
import type { Progress } from '../progress.js';
import { formatBytes, parseSize } from '../size.js';
import { POINT_PREFIX, logNamespace, openJournaledVolume, openVolume, parseTarget } from '../target.js';
import { exportLog, importLog } from './journal-dm-log.js';
import { checkpointLog, parseDuration } from './journal-checkpoint.js';

/**
 * The write log commands: `journal enable|disable|status`, `mark`, `marks`, `restore`. A
 * journaled volume logs every write made through stratadisk (target.ts opens writers with
 * their log); points of the log are read as `DIR@seq:N`, `DIR@time:ISO`, `DIR@mark:LABEL`.
 */

const SUBCOMMANDS = ['enable', 'disable', 'status', 'export', 'import', 'checkpoint', 'policy'] as const;

export const journalCommand: Command = {
  name: 'journal',
  summary: 'keep a write log of the volume, to read, export or restore any earlier point (enable, disable, status, export, import)',
  usage: 'journal enable|disable|status DIR [--store LOGDIR] [--json] [--force] | journal export|import DIR LOG',
  details: [
    '  journal enable DIR [--store LOGDIR]  start logging every write, write-zeroes and flush of',
    '      DIR (the volume as it is now is kept as snapshot journal.base). The log lives in DIR,',
    '      or in LOGDIR (created 0700 if missing; put it on another disk to survive losing DIR\'s).',
    '      From then on, every stratadisk command that writes DIR logs its writes; programs that',
    '      open the volume for writing without the log are refused (`unsupported`).',
    '  journal disable DIR [--force]  stop logging and delete the log (journal.base stays, as an',
    '      ordinary snapshot). --force: even when the log cannot be read.',
    '  journal status DIR [--json]    records, bytes, marks, the last durable flush, and what the',
    '      last open had to cut or redo after a crash. Read-only (works while DIR is served).',
    '  journal export DIR LOG [--from P] [--to P] [--sector-size N]  write the log (after point P,',
    '      default the base, up to P, default the last flush) as a Linux dm-log-writes file LOG;',
    '      replay it (replay-log) onto the state at --from (`stratadisk export DIR@seq:N`).',
    '  journal import DIR LOG [--scan]  read a dm-log-writes file (the kernel\'s log-writes target,',
    '      QEMU\'s blklogwrites) onto DIR, whose log must be new and whose data must be the log\'s',
    '      start state: entry N becomes DIR@seq:N. Only the entries its super block counts are read;',
    '      --scan reads every valid entry (a log whose writer stopped uncleanly).',
    '  journal checkpoint DIR [--to POINT | --keep-bytes SIZE | --keep-age DURATION]  fold the oldest',
    '      (default: as far as the last flush)',
    '      part of the log into its base and delete it: points before the fold are gone, later ones',
    '      read exactly as before. The log is cut at segment ends (a segment closes at 64 MiB).',
    '      --keep-bytes 1G keeps at least the newest 1 GiB of log; --keep-age 7d the last 7 days.',
    '  journal policy DIR --max-bytes SIZE [--on-full fold|refuse]  limit the log\'s size: at the',
    '      limit it folds its oldest part in the background (fold, the default) or refuses writes',
    '      with `quota` until you checkpoint (refuse). --max-bytes 0 removes the limit.',
    'Points of the log: DIR@seq:N, DIR@time:ISO-TIME, DIR@mark:LABEL (see `stratadisk marks DIR`),',
    'read by export, map, compare and serve-nbd like DIR@SNAPSHOT. Roll back with `stratadisk restore`.',
    'After the @, a text starting with seq:, time: or mark: is always a point, never a snapshot name',
    '(a snapshot named like that cannot be read as DIR@NAME; rename it by snapshotting again).',
  ].join('\n'),
  options: { store: { type: 'string' }, force: { type: 'boolean' }, from: { type: 'string' }, to: { type: 'string' }, 'sector-size': { type: 'string' }, scan: { type: 'boolean' }, 'keep-bytes': { type: 'string' }, 'keep-age': { type: 'string' }, 'max-bytes': { type: 'string' }, 'on-full': { type: 'string' }, ...JSON_OPTION },
  positionals: { min: 2, max: 3 },
  async run({ io, args, values, signal, progress }) {
    const sub = args[0] as (typeof SUBCOMMANDS)[number];
    if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`unknown journal subcommand '${args[0]}' (use ${SUBCOMMANDS.join(', ')})`, 'journal');
    const { dir } = parseTarget(args[1]!, false, `journal ${sub}`);
    if (values.store !== undefined && sub !== 'enable') throw new UsageError('--store goes with `journal enable`', 'journal');
    if (values.force !== undefined && sub !== 'disable') throw new UsageError('--force goes with `journal disable`', 'journal');
    const logFile = args[2];
    if ((sub === 'export' || sub === 'import') !== (logFile !== undefined)) throw new UsageError(sub === 'export' || sub === 'import' ? `journal ${sub} needs DIR and LOG` : `journal ${sub} takes only DIR`, 'journal');
    for (const [k, only] of [['from', ['export']], ['to', ['export', 'checkpoint']], ['sector-size', ['export']], ['scan', ['import']], ['keep-bytes', ['checkpoint']], ['keep-age', ['checkpoint']], ['max-bytes', ['policy']], ['on-full', ['policy']]] as const) {
      if (values[k] !== undefined && !(only as readonly string[]).includes(sub)) throw new UsageError(`--${k} goes with \`journal ${only.join('` or `journal ')}\``, 'journal');
    }
    if (sub === 'policy') {
      if (values['max-bytes'] === undefined) throw new UsageError('journal policy needs --max-bytes SIZE (0: no limit)', 'journal');
      const onFull = values['on-full'] as string | undefined;
      if (onFull !== undefined && onFull !== 'fold' && onFull !== 'refuse') throw new UsageError('--on-full is fold or refuse', 'journal');
      const max = (values['max-bytes'] as string) === '0' ? undefined : parseSize(values['max-bytes'] as string, '--max-bytes');
      const { volume: v, journal } = await openJournaledVolume(dir, false);
      try {
        if (!journal) throw new StrataError('not-found', `${dir} keeps no write log; start one with \`stratadisk journal enable ${dir}\`.`);
        await journal.setPolicy({ ...(max !== undefined ? { maxBytes: max } : {}), ...(onFull ? { onFull: onFull as 'fold' | 'refuse' } : {}) });
        line(io.stdout, max === undefined ? `The write log of ${dir} has no size limit now.` : `The write log of ${dir} is limited to ${formatBytes(max)}; at the limit it ${onFull === 'refuse' ? 'refuses writes (quota) until you run `stratadisk journal checkpoint`' : 'folds its oldest part in the background'}.`);
        return 0;
      } finally {
        await v.close();
      }
    }
    if (sub === 'checkpoint') {
      const n = ['to', 'keep-bytes', 'keep-age'].filter((k) => values[k] !== undefined).length;
      if (n > 1) throw new UsageError('journal checkpoint takes one of --to POINT, --keep-bytes SIZE, --keep-age DURATION (none: fold as far as the last flush)', 'journal');
      return checkpointLog({ io, signal, progress }, dir, {
        to: n === 0 ? 'latest' : (values.to as string | undefined),
        keepBytes: values['keep-bytes'] !== undefined ? parseSize(values['keep-bytes'] as string, '--keep-bytes') : undefined,
        keepMs: values['keep-age'] !== undefined ? parseDuration(values['keep-age'] as string) : undefined,
      });
    }
    if (sub === 'export') return exportLog({ io, signal, progress }, dir, logFile!, { from: values.from as string | undefined, to: values.to as string | undefined, sectorSize: values['sector-size'] as string | undefined });
    if (sub === 'import') return importLog({ io, signal, progress }, dir, logFile!, values.scan === true);
    if (sub === 'enable') return enable(io, dir, values.store as string | undefined);
    if (sub === 'disable') return disable(io, dir, values.force === true);
    return status(io, dir, values.json === true);
  },
};

async function enable(io: { stdout: { write(s: string): unknown } }, dir: string, store: string | undefined): Promise<number> {
  const v = await openVolume(dir, false);
  try {
    let where = '';
    let logNs: StoreNamespace = v.ns;
    // refused before anything is created (the --store directory included)
    if (v.requirements().some((r) => r.name === JOURNAL_REQUIREMENT)) throw new StrataError('exists', `${dir} already keeps a write log; see it with \`stratadisk journal status ${dir}\`.`);
    if (store !== undefined) {
      if (store === '') throw new UsageError('--store: give a directory', 'journal');
      const abs = resolve(store);
      if (abs !== resolve(dir)) {
        if (existsSync(abs) && !statSync(abs).isDirectory()) throw new StrataError('invalid-argument', `--store ${store} is not a directory; give a directory for the write log.`);
        await mkdir(abs, { recursive: true, mode: 0o700 });
        where = abs;
        logNs = new NodeDirNamespace(abs, { create: false });
      }
    }
    await enableJournal(v, logNs, where);
    line(io.stdout, `Logging every write of ${dir} now${where ? `, in ${where}` : ''}. The volume as it was is snapshot journal.base; add marks with \`stratadisk mark ${dir} LABEL\`.`);
    return 0;
  } finally {
    await v.close();
  }
}

async function disable(io: { stdout: { write(s: string): unknown } }, dir: string, force: boolean): Promise<number> {
  let opened;
  try {
    opened = await openJournaledVolume(dir, false);
  } catch (e) {
    if (!force || !(e instanceof StrataError) || e.code === 'locked' || e.message.startsWith('No ')) throw e;
    // the log cannot be opened: drop it anyway
    const v = await Volume.open(new NodeDirNamespace(dir), { handles: [JOURNAL_REQUIREMENT] });
    opened = { volume: v, journal: null };
  }
  const { volume: v, journal } = opened;
  try {
    const req = v.requirements().find((r) => r.name === JOURNAL_REQUIREMENT);
    if (!req) throw new StrataError('not-found', `${dir} keeps no write log; start one with \`stratadisk journal enable ${dir}\`.`);
    const logNs = req.where === '' ? v.ns : logNamespace(false)(req.where);
    await disableJournal(v, journal, logNs);
    line(io.stdout, `Stopped logging the writes of ${dir} and deleted its log${req.where ? ` in ${req.where}` : ''}. Snapshot journal.base stays (delete it with \`stratadisk delete-snapshot ${dir} journal.base\`).`);
    return 0;
  } finally {
    await v.close();
  }
}

async function status(io: { stdout: { write(s: string): unknown } }, dir: string, json: boolean): Promise<number> {
  const { volume: v, journal } = await openJournaledVolume(dir, true);
  try {
    if (!journal) throw new StrataError('not-found', `${dir} keeps no write log; start one with \`stratadisk journal enable ${dir}\`.`);
    const where = v.requirements().find((r) => r.name === JOURNAL_REQUIREMENT)!.where;
    const s = journal.status();
    if (json) {
      line(io.stdout, JSON.stringify({ ...s, where }, null, 2));
      return 0;
    }
    const rows: [string, string][] = [
      ['log', where === '' ? `in ${dir}` : where],
      ['records', String(s.records)],
      ['bytes', `${formatBytes(s.bytes)} (${s.bytes})`],
      ['marks', String(s.marks)],
      ['blocks logged', String(s.blocks)],
      ['last record', `seq:${s.lastSeq}`],
      ['last durable flush', `seq:${s.lastFlush}`],
      ['recovery', s.recovered ? `${s.recovered.cutRecords} records (${s.recovered.cutBytes} bytes) past the last flush to cut${s.recovered.reason ? ` (${s.recovered.reason})` : ''}; the next writer cuts them` : 'none needed'],
    ];
    rows.push(['size limit', s.policy.maxBytes === undefined ? 'none' : `${formatBytes(s.policy.maxBytes)}, then ${s.policy.onFull === 'refuse' ? 'refuse writes' : 'fold'}${s.full ? ' (full: writes are refused)' : ''}`]);
    if (s.foldError) rows.push(['last fold failed', s.foldError]);
    if (s.failed) rows.push(['failed', s.failed]);
    line(io.stdout, table(['', ''], rows).split('\n').slice(1).join('\n'));
    return 0;
  } finally {
    await journal?.close();
    await v.close();
  }
}

export const markCommand: Command = {
  name: 'mark',
  summary: 'flush and mark the end of a transaction in the write log',
  usage: 'mark DIR LABEL',
  details: [
    'Flushes the volume and appends a mark LABEL at that point of its write log. Marks are the points',
    '`stratadisk restore` goes to without --force; read one as DIR@mark:LABEL (the newest mark',
    'with that label).',
  ].join('\n'),
  positionals: { min: 2, max: 2 },
  async run({ io, args }) {
    const { dir } = parseTarget(args[0]!, false, 'mark');
    const label = args[1]!;
    if (label === '') throw new UsageError('the label is empty', 'mark');
    const { volume: v, journal } = await openJournaledVolume(dir, false);
    try {
      if (!journal) throw new StrataError('not-found', `${dir} keeps no write log to mark; start one with \`stratadisk journal enable ${dir}\`.`);
      const m = await journal.mark(label);
      line(io.stdout, `Marked "${label}" at seq:${m.point} of ${dir} (read it as ${dir}@mark:${label}).`);
      return 0;
    } finally {
      await v.close();
    }
  },
};

export const marksCommand: Command = {
  name: 'marks',
  summary: 'list the marks of the write log',
  usage: 'marks DIR [--json]',
  details: '  --json   an array of { label, point, seq, time } (point: the log seq marked; time: ISO 8601)',
  options: { ...JSON_OPTION },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values }) {
    const { dir } = parseTarget(args[0]!, false, 'marks');
    const { volume: v, journal } = await openJournaledVolume(dir, true);
    try {
      if (!journal) throw new StrataError('not-found', `${dir} keeps no write log; start one with \`stratadisk journal enable ${dir}\`.`);
      const list = journal.marks().map((m) => ({ label: m.label, point: m.point, seq: m.seq, time: new Date(m.time).toISOString() }));
      if (values.json) line(io.stdout, JSON.stringify(list, null, 2));
      else if (list.length === 0) line(io.stdout, `No marks in the write log of ${dir}; add one with \`stratadisk mark ${dir} LABEL\`.`);
      else line(io.stdout, table(['seq', 'point', 'time', 'label'], list.map((m) => [m.seq, m.point, m.time, m.label])));
      return 0;
    } finally {
      await journal?.close();
      await v.close();
    }
  },
};

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'roll the volume back (or forward) to a point of its write log',
  usage: 'restore DIR POINT [--force]',
  details: [
    'POINT is mark:LABEL, seq:N or time:ISO-TIME. Rewrites the blocks changed since POINT with',
    'their content at POINT, through the log, so the restore is itself undoable: it first sets a',
    'mark before-restore-TIME, and restoring to that mark undoes it. Costs time in proportion to',
    'the data changed since POINT. Only marks are allowed by default; a point inside a transaction',
    'needs --force (`invalid-argument: Record N is not a mark ...` otherwise).',
    'Ctrl-C stops between batches: the volume is then part way; run the restore again, or restore',
    'to the before-restore mark it printed.',
  ].join('\n'),
  options: { force: { type: 'boolean' } },
  positionals: { min: 2, max: 2 },
  async run({ io, args, values, signal, progress }) {
    const { dir } = parseTarget(args[0]!, false, 'restore');
    const point = args[1]!;
    if (!POINT_PREFIX.test(point) && point !== 'latest' && point !== 'base') throw new UsageError(`"${point}" is not a point of the write log; use mark:LABEL, seq:N, time:ISO-TIME, base or latest`, 'restore');
    const { volume: v, journal } = await openJournaledVolume(dir, false);
    let bar: Progress | undefined;
    try {
      if (!journal) throw new StrataError('not-found', `${dir} keeps no write log, so there is nothing to restore from; snapshots are restored with \`stratadisk revert ${dir} NAME\`.`);
      const bs = v.blockSize;
      let r;
      try {
        r = await restoreTo(journal, point, {
          force: values.force === true,
          signal,
          onProgress: (done, total) => {
            bar ??= progress('restore', total * bs);
            bar.update(done * bs);
          },
        });
      } catch (e) {
        bar?.finish();
        if (e instanceof StrataError && e.code === 'aborted') {
          const undo = journal.marks().filter((m) => m.label.startsWith('before-restore-')).pop();
          throw new Interrupted(`${dir} is part way to ${point}; run the restore again to finish it${undo ? `, or \`stratadisk restore ${dir} mark:${undo.label}\` to go back` : ''}`, { cause: e });
        }
        throw e;
      }
      bar?.finish();
      line(io.stdout, `Restored ${dir} to seq:${r.to} (${point}): ${r.blocks} blocks, ${formatBytes(r.bytes)} rewritten. Undo with \`stratadisk restore ${dir} mark:${r.undo}\`.`);
      return 0;
    } finally {
      bar?.finish();
      await v.close();
    }
  },
};
