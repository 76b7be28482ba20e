/**
 * The write log (src/journal) as the worker engine uses it: opening a volume with its log, the
 * place of a log kept in another namespace of the same backend, and checks of what the page
 * sends (points and labels come from the other side of the boundary).
 */
import { StrataError } from '../errors.js';
import type { StoreNamespace } from '../store/store.js';
import type { Volume } from '../volume/volume.js';
import { openJournaled, parsePoint, type Journal, type Point } from '../journal/index.js';
import type { Backend } from './backends.js';
import type { LogPoint } from './protocol.js';

export interface Logged {
  volume: Volume;
  journal: Journal | null;
  /** the log's namespace when it is not the volume's own (closed with the volume) */
  logNs: StoreNamespace | null;
}

/**
 * Open the volume in `ns` through openJournaled, so a journaled volume opens with its log (and a
 * plain one as before). A log kept elsewhere is opened in `backend` at the path the volume's
 * manifest records.
 */
export async function openLogged(ns: StoreNamespace, backend: Backend, readOnly: boolean): Promise<Logged> {
  let logNs: StoreNamespace | null = null;
  try {
    const { volume, journal } = await openJournaled(ns, {
      readOnly,
      logNamespace: async (where) => {
        logNs = await backend.open(where, { create: false, readOnly });
        return logNs;
      },
    });
    return { volume, journal, logNs };
  } catch (e) {
    if (logNs) await closeNamespace(logNs).catch(() => {});
    throw e;
  }
}

/** A point as the page sent it, checked: text is parsed, objects must be one of the Point forms. */
export function toPoint(p: LogPoint): Point {
  if (typeof p === 'string') return parsePoint(p);
  if (typeof p === 'object' && p !== null) {
    const o = p as Record<string, unknown>;
    if (typeof o.seq === 'number') return { seq: o.seq };
    if (o.time instanceof Date) return { time: o.time };
    if (typeof o.mark === 'string') return { mark: o.mark };
  }
  throw new StrataError('invalid-argument', 'A point of the write log is "seq:N", "time:ISO", "mark:LABEL", "latest", or { seq }, { time: Date }, { mark }.');
}

export function checkLabel(label: unknown): string {
  if (typeof label !== 'string' || label.length === 0) throw new StrataError('invalid-argument', 'A mark needs a label (a non-empty string).');
  return label;
}

export function checkLogPath(path: unknown): string {
  if (path === undefined || path === '') return '';
  if (typeof path !== 'string') throw new StrataError('invalid-argument', 'logPath is a string: a namespace of the same backend.');
  return path;
}

/** Most records one journalRecords call answers (the page asks again for more). */
export const MAX_RECORDS_PER_PAGE = 10_000;

/** The range and page size of a journalRecords call, checked (numbers from the page). */
export function checkRecordRange(after: unknown, upTo: unknown, limit: unknown): { after: number; upTo: number; limit: number } {
  if (!Number.isSafeInteger(after) || !Number.isSafeInteger(upTo)) throw new StrataError('invalid-argument', 'journalRecords takes whole sequence numbers: (after, upTo].');
  if (!Number.isSafeInteger(limit) || (limit as number) < 1) throw new StrataError('invalid-argument', `journalRecords: limit is a whole number from 1 to ${MAX_RECORDS_PER_PAGE}.`);
  return { after: after as number, upTo: upTo as number, limit: Math.min(limit as number, MAX_RECORDS_PER_PAGE) };
}

export function noJournal(h: number): StrataError {
  return new StrataError('not-found', `The volume of handle ${h} keeps no write log; start one with enableJournal().`);
}

/** Some namespaces (IndexedDB) hold a connection; release it when the last user is done. */
export async function closeNamespace(ns: StoreNamespace): Promise<void> {
  const closable = ns as StoreNamespace & { close?: () => Promise<void> | void };
  if (typeof closable.close === 'function') await closable.close();
}
