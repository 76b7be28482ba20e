/**
 * Validators and conditional requests (RFC 9110 §8.8.3, §13) for published versions.
 *
 * The entity tag of a version is its content ID, quoted: `"<64 hex digits>"`. A version never
 * changes, so the tag is strong; on a tag URL (`/IMAGE/latest`) it names the version the tag
 * points to now, so a client that kept `"V"` learns with If-None-Match or If-Range whether the
 * tag has moved. No Last-Modified is sent: dates in If-Modified-Since / If-Range never match.
 */

/** The ETag header value of a version. */
export function entityTag(contentId: string): string {
  return `"${contentId}"`;
}

/** A conditional header longer than this matches nothing (a tag is 66 characters). */
export const MAX_CONDITION_HEADER = 8192;

export type Precondition =
  /** go on and serve */
  | 'proceed'
  /** 304 Not Modified (If-None-Match matched) */
  | 'not-modified'
  /** 412 Precondition Failed (If-Match did not match) */
  | 'failed';

/** The request's If-Match / If-None-Match against the current ETag, in the RFC's order. */
export function evaluatePreconditions(headers: Headers, etag: string): Precondition {
  const ifMatch = headers.get('if-match');
  if (ifMatch !== null && !listMatches(ifMatch, etag, true)) return 'failed';
  const ifNoneMatch = headers.get('if-none-match');
  if (ifNoneMatch !== null && listMatches(ifNoneMatch, etag, false)) return 'not-modified';
  return 'proceed';
}

/**
 * Whether to honour the Range header: yes without If-Range, or when If-Range holds a strong
 * entity tag equal to the current one; no for a weak tag, a date, or junk (the client then
 * gets the whole current version with 200 instead of a piece of another one).
 */
export function rangeApplies(headers: Headers, etag: string): boolean {
  const ifRange = headers.get('if-range');
  if (ifRange === null) return true;
  const tags = parseTags(ifRange.trim());
  return tags !== null && tags.length === 1 && !tags[0]!.weak && `"${tags[0]!.opaque}"` === etag;
}

/** `*`, or a comma-separated list of entity tags of which one matches (strong or weak comparison). */
function listMatches(value: string, etag: string, strong: boolean): boolean {
  const v = value.trim();
  if (v === '*') return true;
  const tags = parseTags(v);
  if (tags === null) return false;
  return tags.some((t) => (!strong || !t.weak) && `"${t.opaque}"` === etag);
}

/** One list element: optional `W/`, then a quoted opaque tag (which may itself hold commas). */
const ELEMENT = /[ \t]*(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|$)|[ \t]*,/y;

/** entity-tag list → tags; null when any element is not an entity tag. */
function parseTags(value: string): { weak: boolean; opaque: string }[] | null {
  if (value.length > MAX_CONDITION_HEADER) return null;
  const out: { weak: boolean; opaque: string }[] = [];
  ELEMENT.lastIndex = 0;
  while (ELEMENT.lastIndex < value.length) {
    const m = ELEMENT.exec(value);
    if (!m) return null;
    if (m[2] !== undefined) out.push({ weak: m[1] !== undefined, opaque: m[2] });
  }
  return out.length > 0 ? out : null;
}
