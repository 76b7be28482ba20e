/** Small parsing and formatting helpers for the demo's inputs and read-outs. */

const UNITS: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
const SIZE = /^(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:I?B)?|B)?$/;

/** `4096`, `64K`, `1.5M`, `0x1000` -> bytes (powers of 1024). Throws a readable Error otherwise. */
export function parseSize(text: string, what: string): number {
  const t = text.trim();
  if (/^0x[0-9a-f]+$/i.test(t)) return Number.parseInt(t, 16);
  const m = SIZE.exec(t.toUpperCase());
  if (!m) throw new Error(`${what} "${text}" is not a size: give bytes or a number with K, M, G (e.g. 64K, 1M).`);
  const bytes = Math.round(Number(m[1]) * UNITS[m[2] ?? '']!);
  if (!Number.isSafeInteger(bytes)) throw new Error(`${what} "${text}" is too large.`);
  return bytes;
}

/** `0 B`, `512 B`, `64 KiB`, `1.5 GiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
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
