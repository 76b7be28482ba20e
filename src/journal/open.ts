import { StrataError } from '../errors.js';
import type { StoreNamespace } from '../store/store.js';
import { Volume, type OpenVolumeOptions } from '../volume/volume.js';
import { Journal, REQUIREMENT } from './journal.js';
import { deleteLog } from './write-log.js';

/**
 * Open a volume with its write log, if it keeps one: the way every writer of a journaled volume
 * opens it. `logNamespace(where)` turns the place the manifest records into a namespace ('' is
 * the volume's own; the CLI resolves directories, a page its OPFS directories). Closing the
 * volume closes the log.
 */
export async function openJournaled(
  ns: StoreNamespace,
  options: OpenVolumeOptions & { logNamespace?: (where: string) => StoreNamespace | Promise<StoreNamespace> } = {},
): Promise<{ volume: Volume; journal: Journal | null }> {
  const volume = await Volume.open(ns, { ...options, handles: [...(options.handles ?? []), REQUIREMENT] });
  const req = volume.requirements().find((r) => r.name === REQUIREMENT);
  if (!req) return { volume, journal: null };
  try {
    const logNs = await logPlace(ns, req.where, options.logNamespace);
    const journal = await Journal.open(volume, logNs, { readOnly: volume.info().readOnly });
    return { volume, journal };
  } catch (e) {
    await volume.close();
    throw e;
  }
}

/** Start a write log for an open volume (see Journal.enable); `where` '' keeps it in the volume's namespace. */
export async function enableJournal(volume: Volume, logNs: StoreNamespace, where: string): Promise<Journal> {
  return Journal.enable(volume, logNs, where);
}

/**
 * Stop logging: drop the requirement and delete the log's segments. The base snapshot stays (it
 * is an ordinary snapshot now). Works on a volume opened with openJournaled (journal given) or,
 * when the log cannot be opened, with `force` on a volume opened with `handles: ['journal']`.
 */
export async function disableJournal(volume: Volume, journal: Journal | null, logNs: StoreNamespace): Promise<void> {
  if (!volume.requirements().some((r) => r.name === REQUIREMENT)) throw new StrataError('not-found', 'This volume keeps no write log.');
  await volume.flush();
  if (journal) await journal.close();
  await volume.setRequirement(REQUIREMENT, null);
  await deleteLog(logNs);
}

async function logPlace(ns: StoreNamespace, where: string, resolve?: (where: string) => StoreNamespace | Promise<StoreNamespace>): Promise<StoreNamespace> {
  if (where === '') return ns;
  if (!resolve) throw new StrataError('invalid-argument', `The write log of this volume lives in ${where}; pass logNamespace to open it there.`);
  return resolve(where);
}
