import { StrataError } from '../../errors.js';
import { exportDmLog, importDmLog } from '../../journal/index.js';
import { NodeFileStore } from '../../store/node-file.js';
import { stageFile } from '../../store/node-staged-file.js';
import { Interrupted, line } from '../io.js';
import type { Progress } from '../progress.js';
import { openJournaledVolume } from '../target.js';

/**
 * `journal export DIR LOG [--from P] [--to P] [--sector-size N]` and `journal import DIR LOG
 * [--scan]`: the write log as a Linux dm-log-writes file (src/journal/dm-log.ts).
 */
export interface Ctx {
  io: { stdout: { write(s: string): unknown } };
  signal: AbortSignal;
  progress(label: string, total: number): Progress;
}

export async function exportLog(ctx: Ctx, dir: string, file: string, opts: { from?: string; to?: string; sectorSize?: string }): Promise<number> {
  const ss = opts.sectorSize === undefined ? 512 : Number(opts.sectorSize);
  if (![512, 1024, 2048, 4096].includes(ss)) throw new StrataError('invalid-argument', `--sector-size ${opts.sectorSize}: use 512, 1024, 2048 or 4096.`);
  const { volume: v, journal } = await openJournaledVolume(dir, true);
  let bar: Progress | undefined;
  try {
    if (!journal) throw new StrataError('not-found', `${dir} keeps no write log to export; start one with \`stratadisk journal enable ${dir}\`.`);
    // written beside the target and renamed into place only when whole (node-staged-file.ts)
    const staged = await stageFile(file, { io: 'sync' });
    try {
      const r = await exportDmLog(journal, staged.store, {
        from: opts.from,
        to: opts.to,
        sectorSize: ss as 512,
        signal: ctx.signal,
        onProgress: (done, total) => {
          bar ??= ctx.progress('export', total);
          bar.update(done);
        },
      });
      await staged.commit();
      bar?.finish();
      line(ctx.io.stdout, `Wrote ${file}: ${r.entries} dm-log-writes entries (${r.records} records after seq:${r.from} up to seq:${r.to}, ${r.bytes} bytes of writes). Replay it onto \`stratadisk export ${dir}@${r.from < 0 ? 'journal.base' : `seq:${r.from}`}\`.`);
      return 0;
    } catch (e) {
      await staged.discard();
      if (e instanceof StrataError && e.code === 'aborted') throw new Interrupted(staged.keptMessage(), { cause: e });
      const code = e instanceof StrataError ? e.code : 'io';
      const kept = staged.keptMessage();
      throw new StrataError(code, `${(e instanceof Error ? e.message : String(e)).replace(/\.?\s*$/, '.')} ${kept[0]!.toUpperCase()}${kept.slice(1)}.`, { cause: e });
    }
  } finally {
    bar?.finish();
    await journal?.close();
    await v.close();
  }
}

export async function importLog(ctx: Ctx, dir: string, file: string, scan: boolean): Promise<number> {
  const { volume: v, journal } = await openJournaledVolume(dir, false);
  let bar: Progress | undefined;
  try {
    if (!journal) throw new StrataError('not-found', `${dir} keeps no write log to import into; start one with \`stratadisk journal enable ${dir}\` on a volume holding the log's start state.`);
    const store = await NodeFileStore.open(file, { readOnly: true });
    try {
      const r = await importDmLog(journal, store, {
        entries: scan ? 'scan' : 'claimed',
        signal: ctx.signal,
        onProgress: (done, total) => {
          if (total <= 0) return;
          bar ??= ctx.progress('import', total);
          bar.update(done);
        },
      });
      bar?.finish();
      line(ctx.io.stdout, `Read ${r.entries} entries of ${file} into the write log of ${dir}: ${r.writes} writes (${r.bytes} bytes), ${r.discards} discards, ${r.flushes} flushes, ${r.marks} marks. Entry N is ${dir}@seq:N.${r.shifted.length > 0 ? ` From entry ${r.shifted[0]!.entry} on, numbers shift (a write larger than 8 MiB took several records): entry ${r.shifted[0]!.entry} is seq:${r.shifted[0]!.seq}.` : ''}`);
      return 0;
    } catch (e) {
      if (e instanceof StrataError && e.code === 'aborted') throw new Interrupted(`${dir} and its log hold the entries read so far`, { cause: e });
      throw e;
    } finally {
      await store.close();
    }
  } finally {
    bar?.finish();
    await v.close();
  }
}
