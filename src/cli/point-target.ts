import { existsSync, realpathSync, statSync } from 'node:fs';
import { StrataError } from '../errors.js';
import { SNAPSHOT_NAME } from '../format/manifest.js';
import type { DiffPoint } from '../journal/diff.js';
import { openJournaled, parsePoint, type Journal } from '../journal/index.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import type { Volume } from '../volume/volume.js';
import { UsageError } from './io.js';

/**
 * `DIR`, `DIR@SNAPSHOT` or `DIR@POINT` (`seq:N`, `time:ISO`, `mark:LABEL`) for `diff` and
 * `export --since`, opened read-only with the write log when the volume keeps one. The same
 * rule as the journal commands' targets: `seq:`, `time:` and `mark:` after an `@` name a log
 * point, never a snapshot (a point is found at the first such `@`, as a label may hold `@`);
 * otherwise the last `@` splits off a snapshot name; a whole text that exists as a path is a DIR.
 */
const POINT_PREFIX = /^(seq|time|mark):/;

export interface PointTarget {
  dir: string;
  point: DiffPoint;
  /** the text after `@`, or '' for the live volume */
  name: string;
}

export function parsePointTarget(spec: string, command: string): PointTarget {
  if (spec === '') throw new UsageError('the volume directory is empty', command);
  if (!existsSync(spec)) {
    for (let at = spec.indexOf('@'); at > 0; at = spec.indexOf('@', at + 1)) {
      const rest = spec.slice(at + 1);
      if (POINT_PREFIX.test(rest)) return { dir: spec.slice(0, at), point: { log: rest }, name: rest };
    }
    const at = spec.lastIndexOf('@');
    if (at > 0 && SNAPSHOT_NAME.test(spec.slice(at + 1))) return { dir: spec.slice(0, at), point: { snapshot: spec.slice(at + 1) }, name: spec.slice(at + 1) };
  }
  return { dir: spec, point: 'live', name: '' };
}

/** A point named without its DIR (`--since`): `seq:N`, `time:ISO`, `mark:LABEL` or a snapshot name. */
export function parseBarePoint(text: string, option: string, command: string): DiffPoint {
  if (POINT_PREFIX.test(text)) {
    parsePoint(text);
    return { log: text };
  }
  if (SNAPSHOT_NAME.test(text)) return { snapshot: text };
  throw new UsageError(`${option} takes a snapshot name or a point of the write log (seq:N, time:ISO, mark:LABEL), not "${text}"`, command);
}

/** Check a log point's text early (a usage mistake is reported before anything opens). */
export function checkPoint(p: DiffPoint): void {
  if (typeof p === 'object' && 'log' in p && typeof p.log === 'string') parsePoint(p.log);
}

/** The same directory? (symlinks and `./` resolved; a missing one compares by text) */
export function sameDir(a: string, b: string): boolean {
  const real = (d: string): string => {
    try {
      return realpathSync(d);
    } catch {
      return d;
    }
  };
  return real(a) === real(b);
}

/** Open the volume in `dir` read-only, with its write log if it keeps one (close both with the returned close). */
export async function openForPoints(dir: string): Promise<{ volume: Volume; journal: Journal | null; close: () => Promise<void> }> {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new StrataError('not-found', `No volume at ${dir}: the directory does not exist.`);
  }
  if (!st.isDirectory()) throw new StrataError('invalid-argument', `${dir} is not a directory; a volume is a directory.`);
  const ns = new NodeDirNamespace(dir, { readOnly: true });
  const { volume, journal } = await openJournaled(ns, { readOnly: true, logNamespace: (where) => new NodeDirNamespace(where, { readOnly: true }) });
  return {
    volume,
    journal,
    close: async () => {
      await journal?.close();
      await volume.close();
    },
  };
}
