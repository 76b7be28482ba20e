import { FORMATS, MAGIC_STAGING } from '../format/magic.js';
import { RECORD_OVERHEAD, checksumOk, decodeHead, encodeRecord } from '../format/record.js';
import { isStrataError } from '../errors.js';
import type { StoreNamespace } from '../store/store.js';

/**
 * The mark of a staged change (an import, Volume.staged): one checksummed record in
 * `staging.mark` saying "layers numbered from `from` up that the manifest does not name belong to
 * a change that has not committed". It is written and synced before the change creates its
 * first layer and deleted after the commit that names them (or after they were dropped). After a
 * crash in between, the next writable open deletes those layers and the mark; without it they
 * would look like the layers of a newer manifest generation that was lost (newer-state.ts).
 * A torn mark (a crash while writing it) is ignored: no layer was created before it was durable.
 */
export const STAGING_MARK = 'staging.mark';
const KIND = 1;
const VERSION = FORMATS.stagingMark.writes;
const PAYLOAD = 8;

export async function writeStagingMark(ns: StoreNamespace, from: number): Promise<void> {
  const payload = new Uint8Array(PAYLOAD);
  new DataView(payload.buffer).setFloat64(0, from, true);
  const store = await ns.open(STAGING_MARK, { create: true });
  try {
    if (store.size !== 0) await store.truncate(0);
    await store.write(0, encodeRecord({ magic: MAGIC_STAGING, kind: KIND, version: VERSION, seq: 1, length: PAYLOAD }, payload));
    await store.flush();
  } finally {
    await store.close();
  }
  await ns.sync();
}

/** The first layer number of an uncommitted staged change, or null (no mark, or a torn one). */
export async function readStagingMark(ns: StoreNamespace): Promise<number | null> {
  if (!(await ns.exists(STAGING_MARK))) return null;
  let store;
  try {
    store = await ns.open(STAGING_MARK, { readOnly: true });
  } catch (e) {
    if (isStrataError(e, 'not-found')) return null;
    throw e;
  }
  try {
    if (store.size !== RECORD_OVERHEAD + PAYLOAD) return null;
    const bytes = await store.read(0, store.size);
    const head = decodeHead(bytes, MAGIC_STAGING, PAYLOAD);
    if (!head || head.kind !== KIND || head.version !== VERSION || head.length !== PAYLOAD || !checksumOk(bytes, PAYLOAD)) return null;
    const from = new DataView(bytes.buffer, bytes.byteOffset + 24, PAYLOAD).getFloat64(0, true);
    return Number.isSafeInteger(from) && from >= 1 ? from : null;
  } finally {
    await store.close();
  }
}

export async function removeStagingMark(ns: StoreNamespace): Promise<void> {
  if (!(await ns.exists(STAGING_MARK))) return;
  await ns.delete(STAGING_MARK);
  await ns.sync();
}
