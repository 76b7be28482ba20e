/**
 * How a v86 machine state (the ArrayBuffer of `save_state()`) is kept. Guest RAM is mostly zero
 * pages, so the file stores only the non-zero 4 KiB pages (found by one batched kernel scan) and
 * a bitmap of which ones; gzip was measured at ~6 MB/s on this VM, far too slow for a 130 MiB
 * state. A header and an XXH3-64 of the body let a torn or damaged file be refused with
 * `corrupt` instead of being handed to the emulator.
 *
 *   0  magic "V86STATE" (8 bytes)
 *   8  version u32 = 1
 *  12  page size u32 (4096)
 *  16  raw length u64 (the state's size)
 *  24  stored pages u64
 *  32  XXH3-64 of the body (bitmap + pages), u64
 *  40  body: bitmap (1 bit per page, LSB first, 1 = stored), then the stored pages in order
 */
import { StrataError } from '../errors.js';
import { FORMATS, MAGIC_V86_STATE as MAGIC, newerVersion } from '../format/magic.js';
import { loadKernels, scanBlocks, xxh3_64 } from '../wasm/index.js';

const HEADER = 40;
const PAGE = 4096;
/** v86 states are guest RAM + VGA RAM + devices; 4 GiB RAM is v86's ceiling. */
export const MAX_STATE_BYTES = 4.5 * 2 ** 30;

export async function encodeState(state: ArrayBuffer | Uint8Array): Promise<Uint8Array> {
  await loadKernels();
  const raw = state instanceof Uint8Array ? state : new Uint8Array(state);
  const pages = Math.ceil(raw.length / PAGE);
  const whole = Math.floor(raw.length / PAGE);
  const zero = new Uint8Array(pages);
  if (whole > 0) zero.set(scanBlocks(raw.subarray(0, whole * PAGE), PAGE).zero);
  if (pages > whole) zero[whole] = raw.subarray(whole * PAGE).every((b) => b === 0) ? 1 : 0;
  let stored = 0;
  for (let i = 0; i < pages; i++) if (!zero[i]) stored++;
  const mapBytes = Math.ceil(pages / 8);
  const out = new Uint8Array(HEADER + mapBytes + stored * PAGE);
  let at = HEADER + mapBytes;
  for (let i = 0; i < pages; i++) {
    if (zero[i]) continue;
    out[HEADER + (i >> 3)]! |= 1 << (i & 7);
    out.set(raw.subarray(i * PAGE, Math.min((i + 1) * PAGE, raw.length)), at);
    at += PAGE;
  }
  const view = new DataView(out.buffer);
  for (let i = 0; i < MAGIC.length; i++) out[i] = MAGIC.charCodeAt(i);
  view.setUint32(8, FORMATS.v86State.writes, true);
  view.setUint32(12, PAGE, true);
  view.setBigUint64(16, BigInt(raw.length), true);
  view.setBigUint64(24, BigInt(stored), true);
  view.setBigUint64(32, xxh3_64(out.subarray(HEADER)), true);
  return out;
}

/** The state as v86's `restore_state` takes it; `corrupt` when the bytes are not a whole, intact state file. */
export async function decodeState(bytes: Uint8Array, what: string): Promise<ArrayBuffer> {
  await loadKernels();
  const bad = (why: string) => new StrataError('corrupt', `The saved machine state ${what} is damaged (${why}); revert to a disk-only snapshot or delete this snapshot.`);
  if (bytes.length < HEADER) throw bad('shorter than its header');
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC.charCodeAt(i)) throw bad('bad magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== FORMATS.v86State.writes) throw newerVersion('v86State', `The saved machine state ${what}`, version);
  if (view.getUint32(12, true) !== PAGE) throw bad('unexpected page size');
  const rawLength = view.getBigUint64(16, true);
  const stored = view.getBigUint64(24, true);
  if (rawLength > BigInt(MAX_STATE_BYTES)) throw bad(`claims ${rawLength} bytes`);
  const length = Number(rawLength);
  const pages = Math.ceil(length / PAGE);
  const mapBytes = Math.ceil(pages / 8);
  if (stored > BigInt(pages) || BigInt(bytes.length) !== BigInt(HEADER + mapBytes) + stored * BigInt(PAGE)) throw bad('truncated or wrong length');
  if (xxh3_64(bytes.subarray(HEADER)) !== view.getBigUint64(32, true)) throw bad('checksum mismatch');
  // Sizes are now bounded and consistent with the bytes we hold: allocating is safe.
  const out = new Uint8Array(length);
  let at = HEADER + mapBytes;
  for (let i = 0; i < pages; i++) {
    if (!(bytes[HEADER + (i >> 3)]! & (1 << (i & 7)))) continue;
    if (at + PAGE > bytes.length) throw bad('bitmap and page count disagree');
    const end = Math.min((i + 1) * PAGE, length);
    out.set(bytes.subarray(at, at + (end - i * PAGE)), i * PAGE);
    at += PAGE;
  }
  if (at !== bytes.length) throw bad('bitmap and page count disagree');
  return out.buffer;
}
