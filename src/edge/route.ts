import type { VersionRef } from './source.js';

/**
 * The only paths the edge serves: `/IMAGE/TAG` and `/IMAGE/@CONTENTID`, IMAGE and TAG as in
 * src/transfer/README.md (`[A-Za-z0-9._-]{1,128}`, not `.` or `..`), CONTENTID 64 lower-case hex
 * digits. Everything else (the bucket's own keys, `packs/…`, percent-escapes, `..`, a trailing
 * slash, a third segment) is null: a 404, and nothing is read from the store.
 */
const NAME = '[A-Za-z0-9._-]{1,128}';
const PATH = new RegExp(`^/(${NAME})/(?:@([0-9a-f]{64})|(${NAME}))$`);

export function parseRoute(pathname: string): VersionRef | null {
  const m = PATH.exec(pathname);
  if (!m) return null;
  const image = m[1]!;
  if (image === '.' || image === '..') return null;
  if (m[2] !== undefined) return { image, contentId: m[2] };
  const tag = m[3]!;
  if (tag === '.' || tag === '..') return null;
  return { image, tag };
}

export function isContentIdRef(ref: VersionRef): ref is { image: string; contentId: string } {
  return 'contentId' in ref;
}
