/**
 * The few S3 XML answers the S3 backend reads (ListObjectsV2, DeleteObjects, errors), parsed
 * with bounds and without a general XML parser: elements are found by name, their text
 * unescaped (the five entities and numeric character references), and everything else
 * ignored. The caller bounds the size of the text before it gets here; counts are bounded here.
 */
import { StrataError } from '../errors.js';

/** Most elements of one name read from one answer (a page lists at most 1000 keys). */
const MAX_ELEMENTS = 10_000;

/** The text of every `<name>...</name>` in `xml` (not nested in itself), at most `MAX_ELEMENTS`. */
export function elements(xml: string, name: string): string[] {
  const out: string[] = [];
  const open = `<${name}>`;
  const close = `</${name}>`;
  let at = 0;
  for (;;) {
    const start = xml.indexOf(open, at);
    if (start < 0) return out;
    const end = xml.indexOf(close, start + open.length);
    if (end < 0) throw new StrataError('corrupt', `The S3 answer has an unclosed <${name}> element.`);
    if (out.length >= MAX_ELEMENTS) throw new StrataError('corrupt', `The S3 answer has more than ${MAX_ELEMENTS} <${name}> elements.`);
    out.push(xml.slice(start + open.length, end));
    at = end + close.length;
  }
}

/** The unescaped text of the first `<name>` in `xml`, or undefined. */
export function element(xml: string, name: string): string | undefined {
  const open = `<${name}>`;
  const start = xml.indexOf(open);
  if (start < 0) return undefined;
  const end = xml.indexOf(`</${name}>`, start + open.length);
  if (end < 0) throw new StrataError('corrupt', `The S3 answer has an unclosed <${name}> element.`);
  return unescapeXml(xml.slice(start + open.length, end));
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-z]{2,4});/g, (all, ent: string) => {
    if (ent.startsWith('#')) {
      const cp = ent[1] === 'x' ? Number.parseInt(ent.slice(2), 16) : Number.parseInt(ent.slice(1), 10);
      return cp <= 0x10ffff ? String.fromCodePoint(cp) : all;
    }
    return NAMED[ent] ?? all;
  });
}

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${Object.entries(NAMED).find(([, v]) => v === c)![0]};`);
}

export interface ListPage {
  objects: { key: string; size: number; modified?: number }[];
  truncated: boolean;
  next?: string;
}

/** A ListObjectsV2 answer (`<ListBucketResult>`). */
export function parseListPage(xml: string): ListPage {
  if (!xml.includes('<ListBucketResult')) throw new StrataError('corrupt', 'The S3 server did not answer the listing with a ListBucketResult.');
  const objects: ListPage['objects'] = [];
  for (const c of elements(xml, 'Contents')) {
    const key = element(c, 'Key');
    const sizeText = element(c, 'Size');
    if (key === undefined || sizeText === undefined || !/^[0-9]{1,16}$/.test(sizeText.trim())) {
      throw new StrataError('corrupt', 'The S3 listing has an entry without a key or a valid size.');
    }
    const size = Number(sizeText.trim());
    if (!Number.isSafeInteger(size)) throw new StrataError('corrupt', 'The S3 listing has an entry with an absurd size.');
    const lm = element(c, 'LastModified');
    const modified = lm === undefined ? NaN : Date.parse(lm);
    objects.push(Number.isFinite(modified) ? { key, size, modified } : { key, size });
  }
  const truncated = element(xml, 'IsTruncated')?.trim() === 'true';
  const next = element(xml, 'NextContinuationToken');
  return next !== undefined && next !== '' ? { objects, truncated, next } : { objects, truncated };
}

/** The `<Error>` entries of a DeleteObjects answer: key and code. */
export function parseDeleteErrors(xml: string): { key: string; code: string; message: string }[] {
  return elements(xml, 'Error').map((e) => ({ key: element(e, 'Key') ?? '', code: element(e, 'Code') ?? '', message: element(e, 'Message') ?? '' }));
}

/** A DeleteObjects request body for `keys` (full object names), quiet mode. */
export function deleteBody(keys: readonly string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>${keys.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join('')}</Delete>`;
}

/** Code and message of an S3 error answer (`<Error><Code>...`), each cut to 300 characters. */
export function parseError(xml: string): { code?: string; message?: string } {
  const cut = (s: string | undefined) => (s === undefined ? undefined : s.slice(0, 300));
  try {
    return { code: cut(element(xml, 'Code')), message: cut(element(xml, 'Message')) };
  } catch {
    return {};
  }
}
