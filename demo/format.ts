/** Small parsing and formatting helpers for the demo's inputs and read-outs. */

import { formatBytes, parseSize as parseBytes } from '../src/util/size.js';

export { formatBytes };

/** `4096`, `64K`, `1.5M` (powers of 1024, as the CLI takes them) or `0x1000` -> bytes. */
export function parseSize(text: string, what: string): number {
  const t = text.trim();
  if (/^0x[0-9a-f]+$/i.test(t)) return Number.parseInt(t, 16);
  return parseBytes(t, what);
}

/** Hex dump of `bytes` starting at volume offset `base`, 8 bytes a line (fits a card), with printable text; bytes differing from `other` are marked. */
const ROW = 8;

export function hexdump(bytes: Uint8Array, base: number, other?: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += ROW) {
    const row = bytes.subarray(i, Math.min(i + ROW, bytes.length));
    let hex = '';
    let text = '';
    for (let j = 0; j < ROW; j++) {
      if (j < row.length) {
        const b = row[j]!;
        const differs = other !== undefined && other[i + j] !== b;
        const h = b.toString(16).padStart(2, '0');
        const c = b >= 0x20 && b < 0x7f ? escapeHtml(String.fromCharCode(b)) : '.';
        hex += (differs ? `<span class="diff">${h}</span>` : h) + ' ';
        text += differs ? `<span class="diff">${c}</span>` : c;
      } else {
        hex += '   ';
      }
    }
    lines.push(`${(base + i).toString(16).padStart(8, '0')}  ${hex} ${text}`);
  }
  return lines.join('\n');
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A short local time for a snapshot's ISO creation time. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString();
}

/** The bytes as text: printable ASCII kept, runs of anything else shown as one '·', trailing zeros dropped. */
export function asText(bytes: Uint8Array, max = 60): string {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  let out = '';
  for (let i = 0; i < end && out.length < max; i++) {
    const b = bytes[i]!;
    if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else if (!out.endsWith('·')) out += '·';
  }
  return out.length >= max ? `${out}…` : out;
}
