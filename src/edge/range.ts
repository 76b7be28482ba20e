/**
 * The `Range` request header (RFC 9110 §14), for one representation of `size` bytes.
 *
 * What the edge serves:
 * - one range: `bytes=FIRST-LAST`, open-ended `bytes=FIRST-`, suffix `bytes=-N` → 206;
 * - a single range that does not overlap the representation (FIRST ≥ size, `bytes=-0`, any
 *   range of an empty representation) → 416 with `Content-Range: bytes * /SIZE`;
 * - several ranges → the header is ignored and the whole representation is sent with 200, as S3
 *   does (RFC 9110 lets a server ignore Range; our clients ask for one range at a time, and a
 *   multipart/byteranges body would be a second body format for each of them to parse);
 * - anything else (another unit, junk, an overlong header) → ignored, 200.
 *
 * Numbers are decimal digits only; a number too long to be exact is treated as "beyond any
 * size" (so a hostile `bytes=99999999999999999999999-` is a 416, never a wrong offset).
 */
export type RangeDecision =
  /** no usable Range header: send the whole representation (200) */
  | { kind: 'full' }
  /** send bytes [start, end) (206) */
  | { kind: 'partial'; start: number; end: number }
  /** 416, with `Content-Range: bytes * /SIZE` */
  | { kind: 'unsatisfiable' };

/** A Range header longer than this is ignored (a single range needs at most ~40 characters). */
export const MAX_RANGE_HEADER = 1024;

/** Digits beyond this count cannot be an exact offset (2^53 has 16 digits): read as Infinity. */
const MAX_DIGITS = 15;

const RANGE_SPEC = /^(\d*)[ \t]*-[ \t]*(\d*)$/;

export function decideRange(header: string | null | undefined, size: number): RangeDecision {
  if (header === null || header === undefined) return { kind: 'full' };
  if (header.length > MAX_RANGE_HEADER) return { kind: 'full' };
  const eq = header.indexOf('=');
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'full' };
  // A list may carry empty elements (RFC 9110 §5.6.1): "bytes=0-1," is one range.
  const specs = header.slice(eq + 1).split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (specs.length !== 1) return { kind: 'full' };
  const m = RANGE_SPEC.exec(specs[0]!);
  if (!m) return { kind: 'full' };
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return { kind: 'full' };
  if (a === '') {
    // suffix: the last N bytes
    const n = toNumber(b);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - Math.min(n, size)), end: size };
  }
  const first = toNumber(a);
  if (b !== '') {
    const last = toNumber(b);
    if (last < first) return { kind: 'full' }; // invalid range-spec: ignore the header
    if (first >= size) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: first, end: Math.min(size, last + 1) };
  }
  if (first >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start: first, end: size };
}

function toNumber(digits: string): number {
  const t = digits.replace(/^0+(?=\d)/, '');
  return t.length > MAX_DIGITS ? Number.POSITIVE_INFINITY : Number(t);
}

/** `Content-Range` of a 206 for bytes [start, end) of `size`. */
export function contentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end - 1}/${size}`;
}

/** `Content-Range` of a 416. */
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`;
}
