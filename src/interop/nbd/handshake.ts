import type { Socket } from 'node:net';
import type { ExportRegistry, NbdExport } from './exports.js';
import {
  BASE_ALLOCATION,
  QEMU_DIRTY_BITMAP,
  FLAG_C_FIXED_NEWSTYLE,
  FLAG_C_NO_ZEROES,
  IHAVEOPT,
  INFO,
  MAX_OPTION_LENGTH,
  MAX_PAYLOAD,
  OPT,
  PayloadReader,
  REP,
  TFLAG,
  greeting,
  optionError,
  optionReply,
} from './protocol.js';
import { SocketReader } from './socket-reader.js';
import { startTls, type TlsConfig } from './tls.js';

/** What option haggling settled: the export, and the extensions the client turned on. */
export interface Session {
  export: NbdExport;
  /** transmission flags sent to the client */
  flags: number;
  structuredReplies: boolean;
  /** the id of base:allocation when the client selected it for this export, else 0 */
  baseAllocationId: number;
  /** the id of the export's qemu:dirty-bitmap:NAME when the client selected it, else 0 */
  dirtyBitmapId: number;
}

/** A client that haggles forever is cut off after this many options. */
const MAX_OPTIONS = 256;
/** The context id we hand out for base:allocation (any nonzero value would do). */
const BASE_ALLOCATION_ID = 1;
/** ... and for the export's dirty bitmap. */
const DIRTY_BITMAP_ID = 2;

/** A connection being negotiated: its socket and reader are replaced by TLS ones after STARTTLS. */
export interface Conn {
  socket: Socket;
  reader: SocketReader;
}

/** The protocol was broken in a way that leaves no way to answer: close the connection. */
export class ProtocolViolation extends Error {
  override name = 'ProtocolViolation';
}

/** Transmission flags for an export, given what was negotiated. */
export function transmissionFlags(e: NbdExport, structured: boolean): number {
  // CAN_MULTI_CONN: every connection goes through the same Volume object in this process, so a
  // flush on one connection makes every write completed on any connection durable.
  let f = TFLAG.HAS_FLAGS | TFLAG.SEND_FLUSH | TFLAG.CAN_MULTI_CONN;
  if (e.writer) f |= TFLAG.SEND_FUA | TFLAG.SEND_TRIM | TFLAG.SEND_WRITE_ZEROES;
  else f |= TFLAG.READ_ONLY;
  if (structured) f |= TFLAG.SEND_DF;
  return f;
}

/**
 * Fixed newstyle handshake and option haggling. Resolves with the session once the client
 * enters transmission (NBD_OPT_GO or NBD_OPT_EXPORT_NAME), or null when it aborted. Throws
 * ProtocolViolation (or ConnectionEnded, TlsHandshakeFailed) when the connection must simply be
 * closed. With `tls`, the server runs in the protocol's FORCEDTLS mode (as qemu-nbd and nbdkit
 * with --tls=require): before NBD_OPT_STARTTLS every option but ABORT gets
 * NBD_REP_ERR_TLS_REQD and EXPORT_NAME ends the connection; after it, `conn` holds the TLS
 * socket and its reader, and the haggling starts over inside TLS.
 */
export async function negotiate(conn: Conn, registry: ExportRegistry, isClosing: () => boolean, tls?: TlsConfig): Promise<Session | null> {
  let { socket, reader } = conn;
  socket.write(greeting());
  const clientFlags = (await reader.read(4)).readUInt32BE(0);
  let secured = tls === undefined;
  if ((clientFlags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) !== 0) throw new ProtocolViolation(`unknown client flags 0x${clientFlags.toString(16)}`);
  const noZeroes = (clientFlags & FLAG_C_NO_ZEROES) !== 0;
  let structured = false;
  let meta: { exportName: string; base: boolean; dirty: boolean } | null = null;
  const selected = (name: string) => ({
    baseAllocationId: meta && meta.exportName === name && meta.base ? BASE_ALLOCATION_ID : 0,
    dirtyBitmapId: meta && meta.exportName === name && meta.dirty ? DIRTY_BITMAP_ID : 0,
  });

  const lookup = (name: string): NbdExport | undefined => {
    try {
      return registry.lookup(name);
    } catch {
      return undefined; // e.g. the default snapshot was deleted meanwhile
    }
  };

  for (let n = 0; n < MAX_OPTIONS; n++) {
    const head = await reader.read(16);
    if (head.readBigUInt64BE(0) !== IHAVEOPT) throw new ProtocolViolation('bad option magic');
    const option = head.readUInt32BE(8);
    const length = head.readUInt32BE(12);
    if (length > MAX_OPTION_LENGTH) throw new ProtocolViolation(`option ${option} has an absurd length ${length}`);
    const data = await reader.read(length);
    const reply = (type: number, payload?: Uint8Array) => socket.write(optionReply(option, type, payload));
    const fail = (type: number, message: string) => socket.write(optionError(option, type, message));

    if (!secured) {
      if (option === OPT.EXPORT_NAME) throw new ProtocolViolation('NBD_OPT_EXPORT_NAME before TLS (this server requires TLS)');
      if (option === OPT.ABORT) {
        reply(REP.ACK);
        return null;
      }
      if (option !== OPT.STARTTLS) {
        fail(REP.ERR_TLS_REQD, 'this server requires TLS: send NBD_OPT_STARTTLS first');
        continue;
      }
      if (length !== 0) {
        fail(REP.ERR_INVALID, 'NBD_OPT_STARTTLS takes no data');
        continue;
      }
      reply(REP.ACK);
      // The client starts the TLS handshake only after our ACK: nothing may be left unread.
      if (reader.release().length > 0) throw new ProtocolViolation('data sent after NBD_OPT_STARTTLS before the TLS handshake');
      const secure = await startTls(socket, tls!);
      secure.on('error', () => {}); // reported through the reader
      socket = secure;
      reader = new SocketReader(secure);
      conn.socket = socket;
      conn.reader = reader;
      secured = true;
      continue;
    }
    if (option === OPT.STARTTLS) {
      fail(tls ? REP.ERR_INVALID : REP.ERR_UNSUP, tls ? 'TLS is already on' : 'this server was started without TLS');
      continue;
    }
    if (option === OPT.EXPORT_NAME) {
      // No way to say no: an unknown export ends the session (as the spec requires).
      const name = data.toString('utf8');
      const e = lookup(name);
      if (!e || isClosing()) throw new ProtocolViolation('NBD_OPT_EXPORT_NAME for an unknown export');
      const flags = transmissionFlags(e, structured);
      const b = Buffer.alloc(noZeroes ? 10 : 134);
      b.writeBigUInt64BE(BigInt(e.size), 0);
      b.writeUInt16BE(flags, 8);
      socket.write(b);
      return { export: e, flags, structuredReplies: structured, ...selected(name) };
    }
    if (option === OPT.ABORT) {
      reply(REP.ACK);
      return null;
    }
    if (isClosing()) {
      fail(REP.ERR_SHUTDOWN, 'the server is shutting down');
      continue;
    }
    switch (option) {
      case OPT.LIST: {
        if (length !== 0) {
          fail(REP.ERR_INVALID, 'NBD_OPT_LIST takes no data');
          break;
        }
        for (const e of registry.list()) {
          const name = Buffer.from(e.name, 'utf8');
          const desc = Buffer.from(e.description, 'utf8');
          const p = Buffer.allocUnsafe(4 + name.length + desc.length);
          p.writeUInt32BE(name.length, 0);
          name.copy(p, 4);
          desc.copy(p, 4 + name.length);
          reply(REP.SERVER, p);
        }
        reply(REP.ACK);
        break;
      }
      case OPT.INFO:
      case OPT.GO: {
        const r = new PayloadReader(data);
        const name = r.lengthString();
        const count = r.u16();
        if (name === null || count === null || r.remaining !== count * 2) {
          fail(REP.ERR_INVALID, 'malformed NBD_OPT_INFO/GO payload');
          break;
        }
        const wanted = new Set<number>();
        for (let i = 0; i < count; i++) wanted.add(r.u16()!);
        const e = lookup(name);
        if (!e) {
          fail(REP.ERR_UNKNOWN, `no export named "${name}"`);
          break;
        }
        const flags = transmissionFlags(e, structured);
        const info = Buffer.alloc(12);
        info.writeUInt16BE(INFO.EXPORT, 0);
        info.writeBigUInt64BE(BigInt(e.size), 2);
        info.writeUInt16BE(flags, 10);
        reply(REP.INFO, info);
        if (wanted.has(INFO.NAME)) reply(REP.INFO, infoString(INFO.NAME, name));
        if (wanted.has(INFO.DESCRIPTION)) reply(REP.INFO, infoString(INFO.DESCRIPTION, e.description));
        // Sent whether asked or not: it only tells the client what we accept anyway.
        const bs = Buffer.alloc(14);
        bs.writeUInt16BE(INFO.BLOCK_SIZE, 0);
        bs.writeUInt32BE(1, 2);
        bs.writeUInt32BE(Math.min(Math.max(e.blockSize, 4096), 1 << 21), 6);
        bs.writeUInt32BE(MAX_PAYLOAD, 10);
        reply(REP.INFO, bs);
        reply(REP.ACK);
        if (option === OPT.GO) {
          return { export: e, flags, structuredReplies: structured, ...selected(name) };
        }
        break;
      }
      case OPT.STRUCTURED_REPLY:
        if (length !== 0) fail(REP.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
        else {
          structured = true;
          reply(REP.ACK);
        }
        break;
      case OPT.LIST_META_CONTEXT:
      case OPT.SET_META_CONTEXT: {
        const set = option === OPT.SET_META_CONTEXT;
        if (set) meta = null; // a SET replaces the selection even when it fails
        if (!structured) {
          fail(REP.ERR_INVALID, 'negotiate NBD_OPT_STRUCTURED_REPLY first');
          break;
        }
        const r = new PayloadReader(data);
        const name = r.lengthString();
        const count = r.u32();
        const queries: string[] = [];
        let ok = name !== null && count !== null;
        for (let i = 0; ok && i < count!; i++) {
          const q = r.lengthString();
          if (q === null) ok = false;
          else queries.push(q);
        }
        if (!ok || r.remaining !== 0) {
          fail(REP.ERR_INVALID, 'malformed meta context payload');
          break;
        }
        const e = lookup(name!);
        if (!e) {
          fail(REP.ERR_UNKNOWN, `no export named "${name}"`);
          break;
        }
        // LIST with no query lists everything; "base:" / "qemu:" / "qemu:dirty-bitmap:" list a
        // namespace; SET needs exact names (unknown ones are skipped, as the protocol says).
        const dirtyName = e.bitmap ? QEMU_DIRTY_BITMAP + e.bitmap.name : null;
        const base = set ? queries.includes(BASE_ALLOCATION) : queries.length === 0 || queries.some((q) => q === BASE_ALLOCATION || q === 'base:');
        const dirty = dirtyName !== null && (set ? queries.includes(dirtyName) : queries.length === 0 || queries.some((q) => q === dirtyName || q === 'qemu:' || q === QEMU_DIRTY_BITMAP));
        const context = (id: number, text: string): void => {
          const p = Buffer.allocUnsafe(4 + Buffer.byteLength(text));
          p.writeUInt32BE(set ? id : 0, 0);
          p.write(text, 4, 'utf8');
          reply(REP.META_CONTEXT, p);
        };
        if (base) context(BASE_ALLOCATION_ID, BASE_ALLOCATION);
        if (dirty) context(DIRTY_BITMAP_ID, dirtyName);
        if (set && (base || dirty)) meta = { exportName: name!, base, dirty };
        reply(REP.ACK);
        break;
      }
      default:
        fail(REP.ERR_UNSUP, `option ${option} is not supported by stratadisk`);
    }
  }
  throw new ProtocolViolation('too many options');
}

function infoString(type: number, s: string): Buffer {
  const t = Buffer.from(s, 'utf8');
  const b = Buffer.allocUnsafe(2 + t.length);
  b.writeUInt16BE(type, 0);
  t.copy(b, 2);
  return b;
}
