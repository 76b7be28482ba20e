/** Byte counts for people and from people: shared by the CLI and the demo. */
import { StrataError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };
const SIZE = /^(\d+(?:\.\d+)?)\s*(?:([KMGTP])(?:I?B)?|B)?$/;

/**
 * Parses a byte count: plain bytes (`4096`) or a number with a binary unit — `K`, `M`, `G`, `T`,
 * `P`, optionally followed by `B` or `iB` (`64K`, `64KB` and `64KiB` are all 65536; like qemu-img,
 * every unit is a power of 1024). Case-insensitive. A fraction is accepted only when it comes
 * out as whole bytes (`1.5G` yes, `1.5` or `0.1K` no). Anything else — negative, empty, junk,
 * beyond 2^53 — is an `invalid-argument` StrataError naming `what`.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = SIZE.exec(text.trim().toUpperCase());
  if (!m) throw new StrataError('invalid-argument', `${what} "${text}" is not a size: give bytes or a number with K, M, G or T (powers of 1024), e.g. 64K or 1G.`);
  const [, num, unit = ''] = m;
  const scale = UNITS[unit]!;
  let bytes: number;
  if (num!.includes('.')) {
    // Exact decimal arithmetic: "1.5" * 2^30 as (15 * 2^30) / 10, checked to be whole.
    const [int, frac] = num!.split('.') as [string, string];
    const denom = 10n ** BigInt(frac.length);
    const scaled = BigInt(int + frac) * BigInt(scale);
    if (scaled % denom !== 0n) throw new StrataError('invalid-argument', `${what} "${text}" is not a whole number of bytes.`);
    bytes = Number(scaled / denom);
  } else {
    bytes = Number(num) * scale;
  }
  if (!Number.isSafeInteger(bytes)) throw new StrataError('invalid-argument', `${what} "${text}" is too large.`);
  return bytes;
}

/** A byte count for people: `0 B`, `512 B`, `64 KiB`, `1.5 GiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const digits = v >= 100 || Number.isInteger(v) ? 0 : v >= 10 ? 1 : 2;
  return `${Number(v.toFixed(digits))} ${units[u]}`;
}
