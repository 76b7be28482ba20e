/**
 * NBD wire constants and the encoders/decoders of its fixed-size messages (the protocol as
 * written in NetworkBlockDevice/nbd doc/proto.md). Everything on the wire is big-endian.
 * Nothing here does I/O: handshake.ts and transmission.ts put these together on a socket.
 */

export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
/** Magic of every option reply during fixed newstyle haggling. */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server) and client flags. */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags. */
export const TFLAG = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
} as const;

/** Options of the handshake phase. */
export const OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

/** Option reply types; errors have bit 31 set. */
export const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
} as const;

/** NBD_REP_INFO item types. */
export const INFO = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

/** Commands of the transmission phase. */
export const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 } as const;

/** Command flags. */
export const CMD_FLAG = { FUA: 1 << 0, NO_HOLE: 1 << 1, DF: 1 << 2, REQ_ONE: 1 << 3, FAST_ZERO: 1 << 4 } as const;

/** Structured reply chunk types and flags. */
export const REPLY_FLAG_DONE = 1;
export const REPLY_TYPE = { NONE: 0, OFFSET_DATA: 1, OFFSET_HOLE: 2, BLOCK_STATUS: 5, ERROR: 0x8001, ERROR_OFFSET: 0x8002 } as const;

/** Error values (the protocol's own numbering, equal to Linux errno). */
export const NBD_ERR = { EPERM: 1, EIO: 5, ENOMEM: 12, EINVAL: 22, ENOSPC: 28, EOVERFLOW: 75, ENOTSUP: 95, ESHUTDOWN: 108 } as const;

/** The one metadata context we serve, and its state bits. */
export const BASE_ALLOCATION = 'base:allocation';
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;
/** QEMU's dirty bitmap contexts (docs/interop/nbd.rst): `qemu:dirty-bitmap:NAME`, one state bit. */
export const QEMU_DIRTY_BITMAP = 'qemu:dirty-bitmap:';
export const STATE_DIRTY = 1 << 0;

/** Largest READ or WRITE payload we accept (the spec's default maximum block size). */
export const MAX_PAYLOAD = 32 << 20;
/** Largest option payload we read; anything longer closes the connection (no 4 GiB buffers). */
export const MAX_OPTION_LENGTH = 64 << 10;
/** Strings (export names, queries) are at most 4096 bytes by the spec. */
export const MAX_STRING = 4096;

export const REQUEST_HEADER = 28;
export const SIMPLE_REPLY_HEADER = 16;
export const STRUCTURED_REPLY_HEADER = 20;

/** The server's greeting: NBDMAGIC, IHAVEOPT, handshake flags. */
export function greeting(): Buffer {
  const b = Buffer.alloc(18);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
  return b;
}

/** One option reply: magic, option, reply type, length, payload. */
export function optionReply(option: number, type: number, payload: Uint8Array = EMPTY): Buffer {
  const b = Buffer.allocUnsafe(20 + payload.length);
  b.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(payload.length, 16);
  b.set(payload, 20);
  return b;
}

/** An error option reply carrying a message for a person. */
export function optionError(option: number, type: number, message: string): Buffer {
  return optionReply(option, type, Buffer.from(message.slice(0, 1024), 'utf8'));
}

export interface Request {
  flags: number;
  type: number;
  /** the client's opaque handle, echoed in every reply */
  cookie: bigint;
  offset: bigint;
  length: number;
}

/** Decodes a 28-byte request header; null when its magic is wrong. */
export function decodeRequest(b: Uint8Array): Request | null {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0) !== REQUEST_MAGIC) return null;
  return { flags: v.getUint16(4), type: v.getUint16(6), cookie: v.getBigUint64(8), offset: v.getBigUint64(16), length: v.getUint32(24) };
}

/** Writes a simple reply header into the first 16 bytes of `b`. */
export function simpleReplyHeader(b: Buffer, cookie: bigint, error: number): void {
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(cookie, 8);
}

/** Writes an OFFSET_DATA chunk header (28 bytes) for `length` data bytes into `b`. */
export function dataChunkHeader(b: Buffer, cookie: bigint, flags: number, offset: bigint, length: number): void {
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(REPLY_TYPE.OFFSET_DATA, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeUInt32BE(8 + length, 16);
  b.writeBigUInt64BE(offset, 20);
}

/** A simple reply header, with room for `dataLength` bytes after it (filled by the caller). */
export function simpleReply(cookie: bigint, error: number, dataLength = 0): Buffer {
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_HEADER + dataLength);
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(cookie, 8);
  return b;
}

/** A structured reply chunk header followed by `payloadLength` bytes (filled by the caller from offset 20). */
export function chunk(cookie: bigint, flags: number, type: number, payloadLength: number): Buffer {
  const b = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER + payloadLength);
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeUInt32BE(payloadLength, 16);
  return b;
}

/** NBD_REPLY_TYPE_OFFSET_DATA header (offset written; `length` data bytes follow at offset 28). */
export function dataChunk(cookie: bigint, flags: number, offset: number, length: number): Buffer {
  const b = chunk(cookie, flags, REPLY_TYPE.OFFSET_DATA, 8 + length);
  b.writeBigUInt64BE(BigInt(offset), 20);
  return b;
}

export function holeChunk(cookie: bigint, flags: number, offset: number, length: number): Buffer {
  const b = chunk(cookie, flags, REPLY_TYPE.OFFSET_HOLE, 12);
  b.writeBigUInt64BE(BigInt(offset), 20);
  b.writeUInt32BE(length, 28);
  return b;
}

export function errorChunk(cookie: bigint, error: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 1024), 'utf8');
  const b = chunk(cookie, REPLY_FLAG_DONE, REPLY_TYPE.ERROR, 6 + msg.length);
  b.writeUInt32BE(error, 20);
  b.writeUInt16BE(msg.length, 24);
  msg.copy(b, 26);
  return b;
}

/** One BLOCK_STATUS chunk: context id and (length, flags) descriptors. */
export function blockStatusChunk(cookie: bigint, contextId: number, descriptors: readonly [length: number, flags: number][], flags = REPLY_FLAG_DONE): Buffer {
  const b = chunk(cookie, flags, REPLY_TYPE.BLOCK_STATUS, 4 + 8 * descriptors.length);
  b.writeUInt32BE(contextId, 20);
  let at = 24;
  for (const [length, flags] of descriptors) {
    b.writeUInt32BE(length, at);
    b.writeUInt32BE(flags, at + 4);
    at += 8;
  }
  return b;
}

const EMPTY = new Uint8Array(0);

/**
 * A cursor over an option's payload that never reads past its end: every read returns null
 * once the payload is exhausted, so a lying length field yields NBD_REP_ERR_INVALID, not a throw.
 */
export class PayloadReader {
  private at = 0;
  constructor(private readonly b: Buffer) {}
  get remaining(): number {
    return this.b.length - this.at;
  }
  u16(): number | null {
    if (this.remaining < 2) return null;
    const v = this.b.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  u32(): number | null {
    if (this.remaining < 4) return null;
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  /** A string of `n` bytes (n ≤ MAX_STRING), or null. */
  string(n: number): string | null {
    if (n > MAX_STRING || n > this.remaining) return null;
    const s = this.b.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
  /** A u32-length-prefixed string. */
  lengthString(): string | null {
    const n = this.u32();
    return n === null ? null : this.string(n);
  }
}
