import { realpathSync } from 'node:fs';
import { SNAPSHOT_NAME } from '../format/manifest.js';
import type { DiffPoint } from '../journal/diff.js';
import { parsePoint, type Journal } from '../journal/index.js';
import type { Volume } from '../volume/volume.js';
import { UsageError } from './io.js';
import { POINT_PREFIX, openJournaledVolume, parseTarget } from './target.js';

/**
 * Points of one volume for `diff` and `export --since`: `DIR` (live), `DIR@SNAPSHOT`, or a point
 * of its write log `DIR@seq:N`, `DIR@time:ISO`, `DIR@mark:LABEL` (split by target.ts's
 * parseTarget: a `seq:`/`time:`/`mark:` text after `@` is always a log point).
 */
export interface PointTarget {
  dir: string;
  point: DiffPoint;
  /** the text after `@`, or '' for the live volume */
  name: string;
}

export function parsePointTarget(spec: string, command: string): PointTarget {
  const t = parseTarget(spec, true, command);
  if (t.point !== undefined) return { dir: t.dir, point: { log: t.point }, name: t.point };
  if (t.snapshot !== undefined) return { dir: t.dir, point: { snapshot: t.snapshot }, name: t.snapshot };
  return { dir: t.dir, point: 'live', name: '' };
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
  const { volume, journal } = await openJournaledVolume(dir, true);
  return {
    volume,
    journal,
    close: async () => {
      await journal?.close();
      await volume.close();
    },
  };
}
