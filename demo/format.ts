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

/** Hex dump of `bytes` starting at volume offset `base`, 16 bytes a line, with printable text; bytes differing from `other` are marked. */
export function hexdump(bytes: Uint8Array, base: number, other?: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, Math.min(i + 16, bytes.length));
    let hex = '';
    let text = '';
    for (let j = 0; j < 16; j++) {
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
      if (j === 7) hex += ' ';
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
