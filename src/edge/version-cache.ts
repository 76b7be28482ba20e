import type { OpenVersion, VersionRef, VersionSource } from './source.js';

/**
 * Opened versions kept for the life of an isolate (or a serve-edge process): a version by
 * content ID never changes, so it stays (least recently used first out, `maxVersions`); a tag
 * is remembered `tagMaxAgeMs` and then looked up again. Concurrent opens of one version share
 * one open; a failed open is not remembered.
 */
export interface VersionCacheOptions {
  /** the real opener (e.g. openPublishedVersion over the bucket) */
  open: OpenVersion;
  /** versions kept open (default 16) */
  maxVersions?: number;
  /** how long a tag → version lookup is trusted, ms (default 60 s) */
  tagMaxAgeMs?: number;
  now?: () => number;
}

export function createVersionCache(options: VersionCacheOptions): OpenVersion {
  const maxVersions = Math.max(1, options.maxVersions ?? 16);
  const tagMaxAgeMs = Math.max(0, options.tagMaxAgeMs ?? 60_000);
  const now = options.now ?? Date.now;
  const byId = new Map<string, Promise<VersionSource>>();
  const tags = new Map<string, { contentId: string; until: number }>();

  function remember(contentId: string, p: Promise<VersionSource>): void {
    byId.delete(contentId);
    byId.set(contentId, p);
    while (byId.size > maxVersions) byId.delete(byId.keys().next().value!);
  }

  function byContentId(image: string, contentId: string, signal?: AbortSignal): Promise<VersionSource> {
    const kept = byId.get(contentId);
    if (kept) {
      remember(contentId, kept); // most recently used
      return kept;
    }
    // not tied to one request's signal: other requests may share this open
    const p = options.open({ image, contentId });
    remember(contentId, p);
    p.catch(() => {
      if (byId.get(contentId) === p) byId.delete(contentId);
    });
    return signal ? abortable(p, signal) : p;
  }

  return async function open(ref: VersionRef, signal?: AbortSignal): Promise<VersionSource> {
    if ('contentId' in ref) return byContentId(ref.image, ref.contentId, signal);
    const key = `${ref.image}/${ref.tag}`;
    const t = tags.get(key);
    if (t && t.until > now()) return byContentId(ref.image, t.contentId, signal);
    const version = await options.open(ref, signal);
    tags.set(key, { contentId: version.contentId, until: now() + tagMaxAgeMs });
    if (tags.size > 1024) tags.delete(tags.keys().next().value!);
    if (!byId.has(version.contentId)) remember(version.contentId, Promise.resolve(version));
    return version;
  };
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
