/**
 * The on-disk layout of a Linux dm-log-writes log (drivers/md/dm-log-writes.c), the same layout
 * QEMU's `blklogwrites` block driver writes. Everything is little-endian. Written from the layout,
 * not from either implementation.
 *
 * ```
 * byte 0            one sector: super block
 *                     u64 magic       0x6a736677736872 ("rhswfsj\0" on disk)
 *                     u64 version     1
 *                     u64 nr_entries  entries the writer vouches for (see below)
 *                     u32 sectorsize  the log's sector size (the device's logical block size)
 *                     zero padding to the end of the sector
 * byte sectorsize   entry 0, then entry 1, ... each one:
 *                     one sector: u64 sector, u64 nr_sectors, u64 flags, u64 data_len,
 *                                 then (MARK only) data_len bytes of label, then zeros
 *                     nr_sectors sectors of written data, unless the entry is a DISCARD
 * ```
 *
 * `sector` and `nr_sectors` count sectors of the log's own sector size (not 512-byte units when
 * the sector size is 4096). `data_len` is the length of a MARK's label; writers put 0 there for
 * other entries (an old kernel's DAX path put the byte count of inline data, which is still
 * nr_sectors sectors long in the file).
 *
 * Numbering: entry N is the N-th entry after the super block, counting from 0 — the same number
 * `replay-log --start-entry N` and `--limit` use. The journal maps entry N of a file to sequence N.
 */
import { StrataError } from '../errors.js';

export const DM_LOG_MAGIC = 0x6a736677736872n;
export const DM_LOG_VERSION = 1;
/** Bytes of the super block's fields (the rest of its sector is zero). */
export const DM_LOG_SUPER_BYTES = 28;
/** Bytes of an entry header (the rest of its sector is the mark label or zero). */
export const DM_LOG_ENTRY_BYTES = 32;

/** Entry flags, as the kernel defines them. */
export const DmLogFlag = {
  /** a cache flush (REQ_PREFLUSH): everything logged before it is on stable storage */
  FLUSH: 1,
  /** a write with forced unit access: durable when it completed */
  FUA: 2,
  /** a discard (trim) of nr_sectors at sector; carries no data in the log */
  DISCARD: 4,
  /** a label set by `dmsetup message DEV 0 mark LABEL`; carries no data */
  MARK: 8,
  /** the write was file system metadata (REQ_META) */
  METADATA: 16,
} as const;
export const DM_LOG_KNOWN_FLAGS = 0x1f;

/** The mark the kernel logs when the target is removed (a cleanly finished log ends with it). */
export const DM_LOG_END_MARK = 'dm-log-writes-end';

export const DM_LOG_MIN_SECTOR = 512;
/** Largest sector size read: a logical block size beyond 64 KiB does not exist on Linux. */
export const DM_LOG_MAX_SECTOR = 65536;

export interface DmLogSuper {
  version: number;
  /** nr_entries as written; a number, exact up to 2^53 (larger values are damage anyway). */
  nrEntries: number;
  sectorSize: number;
}

/** One entry of a log, as {@link DmLogReader} yields it. */
export interface DmLogEntry {
  /** 0 for the first entry after the super block (see the numbering note at the top of this file). */
  index: number;
  /** Byte offset of the entry's header sector in the log file. */
  entryOffset: number;
  /** `sector` field: in units of the log's sector size. */
  sector: number;
  /** `nr_sectors` field: in units of the log's sector size. */
  nrSectors: number;
  /** DmLogFlag bits. */
  flags: number;
  /** Byte offset on the logged device: sector × sector size. */
  offset: number;
  /** Bytes on the logged device: nr_sectors × sector size (what a write wrote or a discard trimmed). */
  length: number;
  /** Byte offset of the written data in the log file (just after the header sector). */
  dataOffset: number;
  /** Bytes of written data in the log file: `length` for a write, 0 for a discard, flush or mark. */
  dataLength: number;
  /** The label of a MARK entry. */
  mark?: string;
}

export function hasFlag(entry: { flags: number }, flag: number): boolean {
  return (entry.flags & flag) !== 0;
}

/** The file offset just after the entry (its header sector and its data). */
export function entryEnd(entry: DmLogEntry): number {
  return entry.dataOffset + entry.dataLength;
}

const TWO32 = 2 ** 32;

/** A u64 at `at` as a number, or -1 when it is beyond 2^53 - 1 (never exact, so always damage here). */
export function readU64(v: DataView, at: number): number {
  const lo = v.getUint32(at, true);
  const hi = v.getUint32(at + 4, true);
  if (hi >= 0x200000) return -1;
  return hi * TWO32 + lo;
}

export function writeU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % TWO32, true);
  v.setUint32(at + 4, Math.floor(value / TWO32), true);
}

export function isSectorSize(n: number): boolean {
  return Number.isInteger(n) && n >= DM_LOG_MIN_SECTOR && n <= DM_LOG_MAX_SECTOR && (n & (n - 1)) === 0;
}

/**
 * Parse the super block from the first bytes of a log (at least {@link DM_LOG_SUPER_BYTES}).
 * Throws `invalid-argument` when it is not a dm-log-writes log at all, `unsupported` for a
 * version or sector size this reader does not read.
 */
export function parseSuper(bytes: Uint8Array, label: string): DmLogSuper {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = v.getBigUint64(0, true);
  if (magic !== DM_LOG_MAGIC) {
    throw new StrataError('invalid-argument', `${label} is not a dm-log-writes log (its first 8 bytes are not the magic 0x6a736677736872). Give the log device or file that dm-log-writes or QEMU's blklogwrites wrote.`);
  }
  const version = v.getBigUint64(8, true);
  if (version !== BigInt(DM_LOG_VERSION)) {
    throw new StrataError('unsupported', `${label} is dm-log-writes version ${version}; only version 1 (every kernel and QEMU so far) is read.`);
  }
  const sectorSize = v.getUint32(24, true);
  if (!isSectorSize(sectorSize)) {
    throw new StrataError('unsupported', `${label} has sector size ${sectorSize}; powers of two from ${DM_LOG_MIN_SECTOR} to ${DM_LOG_MAX_SECTOR} bytes are read (dm-log-writes uses the device's logical block size).`);
  }
  const nr = v.getBigUint64(16, true);
  return { version: 1, nrEntries: nr > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(nr), sectorSize };
}

/** A super block sector. */
export function encodeSuper(sectorSize: number, nrEntries: number): Uint8Array {
  const out = new Uint8Array(sectorSize);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, DM_LOG_MAGIC, true);
  writeU64(v, 8, DM_LOG_VERSION);
  writeU64(v, 16, nrEntries);
  v.setUint32(24, sectorSize, true);
  return out;
}

/** Why a header sector is not a valid entry, or the entry. */
export type HeaderResult = { entry: DmLogEntry } | { invalid: string; empty?: boolean };

const labelDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Check and decode one entry header sector (`sector.length` = the log's sector size) found at
 * `entryOffset`. Every number is bounded before use: nothing here allocates by a field's value.
 * Whether the data fits in the file is the caller's check (it knows the file size).
 */
export function parseEntryHeader(sector: Uint8Array, index: number, entryOffset: number): HeaderResult {
  const sectorSize = sector.length;
  const v = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const sec = readU64(v, 0);
  const nr = readU64(v, 8);
  const flagsLo = v.getUint32(16, true);
  const flagsHi = v.getUint32(20, true);
  const dataLen = readU64(v, 24);
  if (flagsHi !== 0 || (flagsLo & ~DM_LOG_KNOWN_FLAGS) !== 0) {
    return { invalid: `unknown flags 0x${((BigInt(flagsHi) << 32n) | BigInt(flagsLo)).toString(16)} (known: FLUSH 1, FUA 2, DISCARD 4, MARK 8, METADATA 16)` };
  }
  const flags = flagsLo;
  if (sec < 0 || nr < 0 || dataLen < 0) return { invalid: 'a sector, nr_sectors or data_len field beyond 2^53' };
  if (flags === 0 && nr === 0) {
    const zero = sector.every((b) => b === 0);
    return { invalid: zero ? 'an all-zero entry (where a log that was not finished ends, or damage)' : 'an entry with no flags and no sectors', empty: zero };
  }
  const offset = sec * sectorSize;
  const length = nr * sectorSize;
  if (!Number.isSafeInteger(offset + length)) return { invalid: `sector ${sec} + ${nr} sectors is beyond any device` };
  const isMark = (flags & DmLogFlag.MARK) !== 0;
  let mark: string | undefined;
  let padFrom = DM_LOG_ENTRY_BYTES;
  if (isMark) {
    if (flags !== DmLogFlag.MARK) return { invalid: `a mark with other flags (0x${flags.toString(16)})` };
    if (nr !== 0) return { invalid: `a mark that claims ${nr} sectors of data` };
    if (dataLen > sectorSize - DM_LOG_ENTRY_BYTES) return { invalid: `a mark label of ${dataLen} bytes (at most ${sectorSize - DM_LOG_ENTRY_BYTES} fit in a ${sectorSize}-byte sector)` };
    const raw = sector.subarray(DM_LOG_ENTRY_BYTES, DM_LOG_ENTRY_BYTES + dataLen);
    if (raw.includes(0)) return { invalid: 'a mark label with a NUL byte inside its data_len' };
    try {
      mark = labelDecoder.decode(raw);
    } catch {
      return { invalid: 'a mark label that is not UTF-8' };
    }
    padFrom += dataLen;
  } else if ((flags & DmLogFlag.DISCARD) !== 0) {
    if (dataLen !== 0) return { invalid: `a discard with data_len ${dataLen} (discards carry no data)` };
  } else if (dataLen > length) {
    return { invalid: `data_len ${dataLen} larger than its ${nr} sectors (${length} bytes)` };
  }
  for (let i = padFrom; i < sectorSize; i++) {
    if (sector[i] !== 0) return { invalid: `a non-zero byte at ${i} of the header sector, where dm-log-writes writes zeros` };
  }
  const dataLength = isMark || (flags & DmLogFlag.DISCARD) !== 0 ? 0 : length;
  const entry: DmLogEntry = { index, entryOffset, sector: sec, nrSectors: nr, flags, offset, length, dataOffset: entryOffset + sectorSize, dataLength };
  if (mark !== undefined) entry.mark = mark;
  return { entry };
}

/** One entry header sector. Arguments are the writer's, already checked. */
export function encodeEntryHeader(out: Uint8Array, sector: number, nrSectors: number, flags: number, label?: Uint8Array): void {
  out.fill(0);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  writeU64(v, 0, sector);
  writeU64(v, 8, nrSectors);
  writeU64(v, 16, flags);
  writeU64(v, 24, label?.length ?? 0);
  if (label) out.set(label, DM_LOG_ENTRY_BYTES);
}
