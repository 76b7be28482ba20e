import { StrataError } from '../../errors.js';
import { foldLog, retentionPoint } from '../../journal/index.js';
import { Interrupted, line } from '../io.js';
import type { Progress } from '../progress.js';
import { openJournaledVolume } from '../target.js';
import type { Ctx } from './journal-dm-log.js';

/** `journal checkpoint DIR [--to POINT | --keep-bytes SIZE | --keep-age DURATION]`: fold the oldest part of the log. */
export async function checkpointLog(ctx: Ctx, dir: string, opts: { to?: string; keepBytes?: number; keepMs?: number }): Promise<number> {
  const { volume: v, journal } = await openJournaledVolume(dir, false);
  let bar: Progress | undefined;
  try {
    if (!journal) throw new StrataError('not-found', `${dir} keeps no write log; start one with \`stratadisk journal enable ${dir}\`.`);
    let to: string | number | null = opts.to ?? null;
    if (to === null) {
      const c = retentionPoint(journal, { keepBytes: opts.keepBytes, keepMs: opts.keepMs });
      if (c === null) {
        const one = journal.log.segmentList().length < 2;
        line(ctx.io.stdout, one ? `Nothing to fold: the log of ${dir} is one segment (segments close at 64 MiB; only whole segments are folded).` : `Nothing to fold: the log of ${dir} is within what you asked to keep.`);
        return 0;
      }
      to = c;
    }
    const r = await foldLog(journal, typeof to === 'number' ? { seq: to } : to, {
      signal: ctx.signal,
      onProgress: (done, total) => {
        bar ??= ctx.progress('checkpoint', total);
        bar.update(done);
      },
    });
    bar?.finish();
    if (r.c === null) line(ctx.io.stdout, `Nothing folded: ${r.reason}.`);
    else line(ctx.io.stdout, `Folded the log of ${dir} up to seq:${r.c} (${r.blocks} blocks kept at that point): ${r.bytesBefore} -> ${r.bytesAfter} bytes. Points before seq:${r.c} are gone; later ones read as before.`);
    return 0;
  } catch (e) {
    if (e instanceof StrataError && e.code === 'aborted') throw new Interrupted('the log is as it was (a fold takes effect only when complete)', { cause: e });
    throw e;
  } finally {
    bar?.finish();
    await v.close();
  }
}

/** `30s`, `15m`, `12h`, `7d` in milliseconds. */
export function parseDuration(text: string): number {
  const m = /^([0-9]{1,9})(s|m|h|d)$/.exec(text);
  if (!m) throw new StrataError('invalid-argument', `"${text}" is not a duration; write it like 30m, 12h or 7d.`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}
