import { StrataError } from '../errors.js';

/**
 * Points in time of a write log, as users name them: `seq:N` (after log record N; records are
 * numbered from 0, as dm-log-writes numbers its entries), `time:ISO` (after the last record
 * logged at or before that time), `mark:LABEL` (the newest mark with that label), `base` (before
 * the first record: the log's base snapshot) and `latest` (the last durable flush). A view reads
 * the volume as it was at the point. Internally the base is seq -1.
 */
export type Point = { seq: number } | { time: Date } | { mark: string } | 'latest' | 'base';

/** The point before the first record. */
export const BASE_SEQ = -1;

export interface Mark {
  label: string;
  /** the log seq it marks (a flush) */
  point: number;
  /** the mark record's own seq */
  seq: number;
  /** ms since 1970 */
  time: number;
}

export interface PointContext {
  /** the newest point a view may be at (the last durable flush) */
  lastSeq: number;
  /** the oldest point kept (the base, or the point the log was folded to) */
  oldest: number;
  marks: readonly Mark[];
  /** records in log order with their times */
  records: readonly { seq: number; time: number }[];
}

/** Parse `seq:N`, `time:ISO`, `mark:LABEL` or `latest`. */
export function parsePoint(text: string): Point {
  if (text === 'latest' || text === 'base') return text;
  const m = /^(seq|time|mark):(.+)$/s.exec(text);
  if (!m) throw new StrataError('invalid-argument', `"${text}" is not a point in the write log; use seq:N, time:ISO-TIME, mark:LABEL, base or latest.`);
  const v = m[2]!;
  if (m[1] === 'seq') {
    if (!/^[0-9]{1,15}$/.test(v)) throw new StrataError('invalid-argument', `"${text}": a sequence number is a whole number (see \`stratadisk marks DIR\` or \`journal status\`).`);
    return { seq: Number(v) };
  }
  if (m[1] === 'time') {
    const t = new Date(v);
    if (Number.isNaN(t.getTime())) throw new StrataError('invalid-argument', `"${text}": not a time; write it like 2026-12-07T18:30:00Z.`);
    return { time: t };
  }
  return { mark: v };
}

/** The log seq a point names; `not-found` / `out-of-range` when it names none of this log. */
export function resolvePoint(point: string | Point, ctx: PointContext): number {
  const p = typeof point === 'string' ? parsePoint(point) : point;
  if (p === 'latest') return ctx.lastSeq;
  if (p === 'base') return ctx.oldest;
  if ('seq' in p) {
    if (!Number.isSafeInteger(p.seq) || p.seq < BASE_SEQ) throw new StrataError('invalid-argument', `seq:${p.seq} is not a sequence number.`);
    if (p.seq > ctx.lastSeq) throw new StrataError('out-of-range', `seq:${p.seq} is after the last durable point of the log (seq:${ctx.lastSeq}).`);
    if (p.seq < ctx.oldest) throw new StrataError('out-of-range', `seq:${p.seq} was folded into the log's base (points from seq:${ctx.oldest} on are kept).`);
    return p.seq;
  }
  if ('time' in p) {
    const t = p.time.getTime();
    let lo = 0;
    let hi = ctx.records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ctx.records[mid]!.time <= t) lo = mid + 1;
      else hi = mid;
    }
    // before the first record: the base
    const seq = lo === 0 ? ctx.oldest : ctx.records[lo - 1]!.seq;
    if (seq < ctx.oldest) throw new StrataError('out-of-range', `${p.time.toISOString()} is before the oldest point the log keeps (seq:${ctx.oldest}); it was folded into the base.`);
    return Math.min(seq, ctx.lastSeq);
  }
  for (let i = ctx.marks.length - 1; i >= 0; i--) if (ctx.marks[i]!.label === p.mark) return ctx.marks[i]!.point;
  throw new StrataError('not-found', `No mark "${p.mark}" in the write log; list them with \`stratadisk marks DIR\`.`);
}
