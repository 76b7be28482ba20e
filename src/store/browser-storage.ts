import { StrataError } from '../errors.js';
import { browserError } from './browser-errors.js';

function storageManager(): StorageManager {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (!storage) throw new StrataError('unsupported', 'This context has no navigator.storage (StorageManager); use a secure context (https or localhost) in a current browser.');
  return storage;
}

/**
 * Asks the browser to keep this site's storage (OPFS and IndexedDB) under storage pressure
 * instead of evicting it: `navigator.storage.persist()`. Resolves to whether storage is now
 * persistent. Chromium decides without a prompt (granted for installed or bookmarked sites and
 * sites with high engagement); call it after a user gesture, e.g. when the user creates a volume.
 * Only available on the page and in workers where `persist` exists; elsewhere resolves false.
 */
export async function requestPersistence(): Promise<boolean> {
  const storage = storageManager();
  if (typeof storage.persist !== 'function') return (await storage.persisted?.()) ?? false;
  try {
    return await storage.persist();
  } catch (e) {
    throw browserError(e, 'ask for persistent storage');
  }
}

/** Usage and quota of this site's storage, in bytes, and whether it is persistent. */
export interface StorageEstimate {
  /** Bytes used by this origin (all its storage: OPFS, IndexedDB, caches). */
  usage: number;
  /** Bytes this origin may use in total; writes past it fail with a `quota` error. */
  quota: number;
  /** True when the browser will not evict this origin's data under storage pressure. */
  persisted: boolean;
}

/**
 * `navigator.storage.estimate()` plus `persisted()`. The figures are estimates by design
 * (browsers pad them to avoid leaking exact sizes of cross-origin resources).
 */
export async function storageEstimate(): Promise<StorageEstimate> {
  const storage = storageManager();
  try {
    const [estimate, persisted] = await Promise.all([storage.estimate(), typeof storage.persisted === 'function' ? storage.persisted() : Promise.resolve(false)]);
    return { usage: estimate.usage ?? 0, quota: estimate.quota ?? 0, persisted };
  } catch (e) {
    throw browserError(e, 'estimate storage usage');
  }
}
