import { once } from 'node:events';
import type { Socket } from 'node:net';
import { isStrataError } from '../../errors.js';
import type { Extent } from '../../volume/map.js';
import { Volume, type VolumeReader } from '../../volume/volume.js';
import { dirtyDescriptors } from './dirty-bitmap.js';
import type { NbdExport } from './exports.js';
import { ProtocolViolation, type Session } from './handshake.js';
import {
  CMD,
  CMD_FLAG,
  MAX_PAYLOAD,
  NBD_ERR,
  REPLY_FLAG_DONE,
  REPLY_TYPE,
  REQUEST_HEADER,
  SIMPLE_REPLY_HEADER,
  STATE_HOLE,
  STATE_ZERO,
  blockStatusChunk,
  chunk,
  dataChunk,
  dataChunkHeader,
  decodeRequest,
  errorChunk,
  holeChunk,
  simpleReply,
  simpleReplyHeader,
  type Request,
} from './protocol.js';
import type { SocketReader } from './socket-reader.js';

/** Requests being served at once per connection; the next request is read when one finishes. */
const MAX_INFLIGHT = 64;
/** Reply bytes queued on the socket beyond which we stop reading requests until it drains. */
const WRITE_HIGH_WATER = 64 << 20;
/** At most this many extents in one BLOCK_STATUS reply (the spec lets us answer less than asked). */
const MAX_DESCRIPTORS = 1 << 16;

/** Only replies smaller than this are corked; big ones gain nothing from batching and go out at once. */
const CORK_MAX = 64 << 10;

/**
 * Bytes of idle reply buffers kept for reuse, shared by all connections of a server. It has
 * to hold a whole window of large reads: nbdcopy keeps 64 requests of 256 KiB in flight on each
 * of its connections, and every buffer the pool cannot hold is a fresh allocation whose pages are
 * faulted in by the read that fills it.
 */
const POOL_BYTES = 64 << 20;

/** Bytes before the data of an OFFSET_DATA chunk: the chunk header and the offset. */
const DATA_CHUNK_HEADER = 28;

/** Reads at least this long are answered with hole chunks for their zero ranges. */
const HOLE_SCAN_MIN = 128 << 10;

/** A request that failed with an NBD error value and a message for the client. */
class NbdError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The transmission phase of one connection: reads requests, serves several at once (replies go
 * out as each finishes, so a slow write does not hold up reads), and answers in simple or
 * structured replies as negotiated. Writes to one volume are serialised by the Volume itself.
 */
export class Transmission {
  /** Told of each request refused because stored data failed its checksum (for the operator's log). */
  onDamage: ((e: Error) => void) | undefined;
  /** Told of each request that failed with EIO for another reason (the client got a message without the details). */
  onRequestError: ((e: Error) => void) | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    private readonly socket: Socket,
    private readonly reader: SocketReader,
    private readonly session: Session,
    /** reply buffers of large reads, shared by the server's connections */
    private readonly pool: BufferPool = new BufferPool(),
    /** while the server switches its volume over (NbdServer.switchOver): settles once it has */
    private readonly switching: () => Promise<void> | undefined = () => undefined,
  ) {}

  /** Serve what `current` says the export now is (the served volume was switched over). */
  retarget(current: (e: NbdExport) => NbdExport): void {
    this.session.export = current(this.session.export);
  }

  /**
   * dispatch, and once more on the export's new volume when the old one refused the request
   * because a mirror job moved it (\`closed\`, from a write queued behind the switch-over): the
   * client sees the request succeed where it now lands.
   */
  private async dispatchFollowing(req: Request, payload: Buffer | undefined): Promise<void> {
    const before = this.session.export;
    try {
      return await this.dispatch(req, payload);
    } catch (e) {
      if (!(isStrataError(e) && e.code === 'closed')) throw e;
      await this.switching();
      if (this.session.export === before) throw e;
      return this.dispatch(req, payload);
    }
  }

  /** Serve requests until NBD_CMD_DISC, the end of the stream, or `stop()`. Throws ProtocolViolation to have the connection closed. */
  async run(): Promise<void> {
    while (!this.stopping) {
      while (this.inflight.size >= MAX_INFLIGHT || this.socket.writableLength > WRITE_HIGH_WATER) {
        if (this.inflight.size > 0) await Promise.race(this.inflight);
        else await Promise.race([once(this.socket, 'drain'), once(this.socket, 'close')]);
        if (this.socket.destroyed) return;
      }
      const req = decodeRequest(this.reader.tryRead(REQUEST_HEADER) ?? (await this.reader.read(REQUEST_HEADER)));
      if (!req) throw new ProtocolViolation('bad request magic');
      let payload: Buffer | undefined;
      if (req.type === CMD.WRITE) {
        // The payload has to be consumed to stay in step; beyond the bound we refuse to buffer it.
        if (req.length > MAX_PAYLOAD) throw new ProtocolViolation(`write of ${req.length} bytes exceeds the ${MAX_PAYLOAD}-byte limit`);
        payload = this.reader.tryRead(req.length) ?? (await this.reader.read(req.length));
      }
      if (req.type === CMD.DISC) {
        await this.idle();
        return;
      }
      if (req.type === CMD.READ && this.readNow(req)) {
        // Served in this turn. Let other connections and events in now and then: a client
        // that keeps its requests coming would otherwise hold the event loop.
        if (++this.servedNow >= MAX_INFLIGHT) {
          this.servedNow = 0;
          await new Promise<void>((r) => setImmediate(r));
        }
        continue;
      }
      const p: Promise<void> = this.serve(req, payload).finally(() => this.inflight.delete(p));
      this.inflight.add(p);
    }
  }

  private servedNow = 0;

  /**
   * Answer a read in this turn of the event loop, with no promise on the way, when the export
   * can read it synchronously (VolumeReader.readIntoNow: no write holds or awaits the volume,
   * the stores read from the page cache). False sends it down the async path (serve), which
   * also reports any error.
   */
  private readNow(req: Request): boolean {
    const reader = this.session.export.reader;
    if (!reader.readIntoNow || req.length === 0 || req.length > MAX_PAYLOAD) return false;
    const offset = Number(req.offset);
    if (offset + req.length > this.session.export.size) return false;
    const structured = this.session.structuredReplies;
    if (structured && this.mayHaveHoles(req, offset)) return false;
    const head = structured ? DATA_CHUNK_HEADER : SIMPLE_REPLY_HEADER;
    const b = this.pool.take(head + req.length);
    let done = false;
    try {
      done = reader.readIntoNow(offset, b.subarray(head));
    } catch {
      done = false;
    }
    if (!done) {
      this.pool.put(b);
      return false;
    }
    if (structured) dataChunkHeader(b, req.cookie, REPLY_FLAG_DONE, req.offset, req.length);
    else simpleReplyHeader(b, req.cookie, 0);
    this.send(b, b.length >= CORK_MAX);
    return true;
  }

  /** Whether requests read are still being served. */
  get busy(): boolean {
    return this.inflight.size > 0;
  }

  /** Stop reading requests (the run loop ends at its next read). */
  stop(): void {
    this.stopping = true;
  }

  /**
   * The whole life of a connection after negotiation: listed in `sessions` while it runs (so a
   * server can stop it), every request answered, then the socket ended. Throws as `run` does.
   */
  async runListed(sessions: Set<Transmission>): Promise<void> {
    sessions.add(this);
    try {
      await this.run();
      await this.idle();
    } finally {
      sessions.delete(this);
    }
    this.socket.end();
  }

  /** Resolves when every request read so far has been answered. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private corked = false;

  /**
   * Queue a reply. Replies finished in the same turn of the event loop are corked together and
   * leave in one writev: with many small reads in flight that saves a syscall per reply.
   */
  private send(b: Buffer, recycle = false): void {
    if (this.socket.destroyed) return;
    if (recycle) {
      // Large replies: the buffer comes back to the pool once the kernel has taken its bytes.
      this.socket.write(b, () => this.pool.put(b));
      return;
    }
    if (!this.corked && b.length < CORK_MAX) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(b);
  }

  /** Serve one request; never rejects (errors become error replies). */
  private async serve(req: Request, payload: Buffer | undefined): Promise<void> {
    try {
      if (req.type !== CMD.READ) return await this.dispatchFollowing(req, payload);
      // Reads are served here rather than in dispatch: one async frame less on the hottest path.
      const offset = this.range(req, false);
      if (req.length > MAX_PAYLOAD) throw new NbdError(NBD_ERR.EINVAL, `reads are limited to ${MAX_PAYLOAD} bytes`);
      const structured = this.session.structuredReplies;
      if (structured && (req.length === 0 || this.mayHaveHoles(req, offset))) return await this.readStructured(req, offset);
      // One buffer per reply: the header, then the data read straight in after it.
      const head = structured ? DATA_CHUNK_HEADER : SIMPLE_REPLY_HEADER;
      const b = this.pool.take(head + req.length);
      if (structured) dataChunkHeader(b, req.cookie, REPLY_FLAG_DONE, req.offset, req.length);
      else simpleReplyHeader(b, req.cookie, 0);
      try {
        await this.session.export.reader.readInto(offset, b.subarray(head));
      } catch (e) {
        this.pool.put(b);
        throw e;
      }
      this.send(b, b.length >= CORK_MAX);
    } catch (e) {
      if (isStrataError(e, 'checksum-mismatch')) this.onDamage?.(e);
      const err = toNbdError(e, req.type === CMD.WRITE || req.type === CMD.WRITE_ZEROES);
      if (err.errno === NBD_ERR.EIO && !isStrataError(e, 'checksum-mismatch')) this.onRequestError?.(e as Error);
      if (this.session.structuredReplies) this.send(errorChunk(req.cookie, err.errno, err.message));
      else this.send(simpleReply(req.cookie, err.errno));
    }
  }

  /**
   * Whether a structured read should consult the map for zero ranges to send as holes. Small
   * reads go out as data without a look at the map: a hole chunk saves little there, and the map
   * lookup would cost as much as the read. Nor is the map needed when the top layer holds data
   * for every block of the range (checked a block at a time, without building the map).
   */
  private mayHaveHoles(req: Request, offset: number): boolean {
    return !(req.flags & CMD_FLAG.DF) && req.length >= HOLE_SCAN_MIN && !topHoldsData(this.session.export.reader, offset, req.length);
  }

  private ok(req: Request): void {
    if (this.session.structuredReplies) this.send(chunk(req.cookie, REPLY_FLAG_DONE, REPLY_TYPE.NONE, 0));
    else this.send(simpleReply(req.cookie, 0));
  }

  private async dispatch(req: Request, payload: Buffer | undefined): Promise<void> {
    const e = this.session.export;
    switch (req.type) {
      case CMD.WRITE: {
        const offset = this.range(req, true);
        const w = this.writer();
        await w.write(offset, payload!);
        if (req.flags & CMD_FLAG.FUA) await w.flush();
        return this.ok(req);
      }
      case CMD.FLUSH:
        await e.writer?.flush();
        return this.ok(req);
      case CMD.TRIM:
      case CMD.WRITE_ZEROES: {
        // TRIM is served as write-zeroes: the range stores no data and reads back as zeros (the
        // spec lets a trimmed range read as anything; zeros are the least surprising). NO_HOLE is
        // ignored: a zero range never allocates data here, whatever the client prefers.
        const offset = this.range(req, req.type === CMD.WRITE_ZEROES);
        const w = this.writer();
        await w.writeZeroes(offset, req.length);
        if (req.flags & CMD_FLAG.FUA) await w.flush();
        return this.ok(req);
      }
      case CMD.BLOCK_STATUS:
        return this.blockStatus(req);
      default:
        throw new NbdError(NBD_ERR.EINVAL, `command ${req.type} is not supported`);
    }
  }

  private writer() {
    const w = this.session.export.writer;
    if (!w) throw new NbdError(NBD_ERR.EPERM, 'this export is read-only');
    return w;
  }

  /** The request's offset as a number, after checking the range lies within the export. */
  private range(req: Request, write: boolean): number {
    const size = this.session.export.size;
    if (Number(req.offset) + req.length > size) {
      // The spec's advice: ENOSPC for writes past the end, EINVAL for everything else.
      throw new NbdError(write ? NBD_ERR.ENOSPC : NBD_ERR.EINVAL, `range ${req.offset}+${req.length} is past the end of the export (${size} bytes)`);
    }
    return Number(req.offset);
  }

  /**
   * A structured read that may have zero ranges (see mayHaveHoles): they go out as OFFSET_HOLE
   * chunks (no bytes on the wire), data as OFFSET_DATA; one data chunk for the whole request when
   * the map shows no zero range.
   */
  private async readStructured(req: Request, offset: number): Promise<void> {
    const { reader } = this.session.export;
    if (req.length === 0) return this.ok(req);
    const extents = await reader.map(offset, req.length);
    if (extents.every((x) => !x.zero)) {
      const b = this.pool.take(DATA_CHUNK_HEADER + req.length);
      dataChunkHeader(b, req.cookie, REPLY_FLAG_DONE, req.offset, req.length);
      try {
        await reader.readInto(offset, b.subarray(DATA_CHUNK_HEADER));
      } catch (e) {
        this.pool.put(b);
        throw e;
      }
      this.send(b, b.length >= CORK_MAX);
      return;
    }
    const pieces = mergeExtents(extents);
    for (let i = 0; i < pieces.length; i++) {
      const [start, length, zero] = pieces[i]!;
      const flags = i === pieces.length - 1 ? REPLY_FLAG_DONE : 0;
      if (zero) {
        this.send(holeChunk(req.cookie, flags, start, length));
      } else {
        const b = dataChunk(req.cookie, flags, start, length);
        // A failure here is answered by an error chunk (with DONE) after the chunks already sent.
        await reader.readInto(start, b.subarray(28));
        this.send(b);
      }
    }
  }

  /**
   * One BLOCK_STATUS chunk per selected context, the last one DONE: base:allocation from the
   * volume map (data → 0; zero, known-zero or unallocated → HOLE|ZERO), and the export's dirty
   * bitmap (qemu:dirty-bitmap:NAME; dirty → 1).
   */
  private async blockStatus(req: Request): Promise<void> {
    const { baseAllocationId: id, dirtyBitmapId } = this.session;
    if (!this.session.structuredReplies || (id === 0 && dirtyBitmapId === 0)) throw new NbdError(NBD_ERR.EINVAL, 'select base:allocation with NBD_OPT_SET_META_CONTEXT first');
    if (req.length === 0) throw new NbdError(NBD_ERR.EINVAL, 'block status of an empty range');
    const offset = this.range(req, false);
    const max = req.flags & CMD_FLAG.REQ_ONE ? 1 : MAX_DESCRIPTORS;
    const chunks: [id: number, descriptors: [number, number][]][] = [];
    if (id !== 0) {
      const extents = await this.session.export.reader.map(offset, req.length);
      const descriptors: [number, number][] = [];
      for (const [, length, zero] of mergeExtents(extents)) {
        descriptors.push([length, zero ? STATE_HOLE | STATE_ZERO : 0]);
        if (descriptors.length >= max) break;
      }
      chunks.push([id, descriptors]);
    }
    const bitmap = this.session.export.bitmap;
    if (dirtyBitmapId !== 0 && bitmap) chunks.push([dirtyBitmapId, dirtyDescriptors(bitmap, offset, req.length, max)]);
    for (let i = 0; i < chunks.length; i++) this.send(blockStatusChunk(req.cookie, chunks[i]![0], chunks[i]![1], i === chunks.length - 1 ? REPLY_FLAG_DONE : 0));
  }
}

/**
 * Reply buffers of large reads, kept for reuse: allocating (and later collecting) a fresh
 * 256 KiB buffer per request is a large share of the cost of serving sequential reads. One per
 * server, so that a client's next connection finds the buffers of its last one.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private held = 0;
  take(size: number): Buffer {
    const b = this.free.get(size)?.pop();
    if (b) {
      this.held -= b.length;
      return b;
    }
    return Buffer.allocUnsafe(size);
  }
  put(b: Buffer): void {
    if (b.length < CORK_MAX || this.held + b.length > POOL_BYTES) return;
    let list = this.free.get(b.length);
    if (!list) this.free.set(b.length, (list = []));
    list.push(b);
    this.held += b.length;
  }
}

/**
 * True when `reader` is a live volume whose active layer holds stored data for every block of
 * the range: the map of that range is then one data extent (the top layer wins), so a read need
 * not build it. False means "ask the map", not "there is a hole".
 */
function topHoldsData(reader: VolumeReader, offset: number, length: number): boolean {
  if (!(reader instanceof Volume)) return false;
  let top: Volume['active'] | undefined;
  try {
    top = reader.active;
  } catch {
    return false; // a closed volume: the read reports it
  }
  if (!top) return false;
  const bs = reader.blockSize;
  const last = Math.floor((offset + length - 1) / bs);
  for (let b = Math.floor(offset / bs); b <= last; b++) if (top.slot(b) < 0) return false;
  return true;
}

/** Extents reduced to [start, length, zero] runs, neighbours of the same kind merged. */
function mergeExtents(extents: readonly Extent[]): [number, number, boolean][] {
  const out: [number, number, boolean][] = [];
  for (const x of extents) {
    const last = out[out.length - 1];
    if (last && last[2] === x.zero && last[0] + last[1] === x.start) last[1] += x.length;
    else out.push([x.start, x.length, x.zero]);
  }
  return out;
}

/**
 * A StrataError (or anything else) as the NBD error value a client understands, with a message
 * for the client's user. Only messages written for the client (NbdError) are passed on; the
 * engine's own messages name directories, files, processes and hosts of the server, which are
 * none of a client's business: the client gets a fixed sentence per kind, the server's operator
 * the full message (onRequestError / onDamage).
 */
function toNbdError(e: unknown, write: boolean): NbdError {
  if (e instanceof NbdError) return e;
  if (isStrataError(e)) {
    switch (e.code) {
      case 'out-of-range':
        return new NbdError(write ? NBD_ERR.ENOSPC : NBD_ERR.EINVAL, 'the request reaches past the end of the export');
      case 'invalid-argument':
        return new NbdError(NBD_ERR.EINVAL, 'the server refused the request as invalid');
      case 'quota':
        return new NbdError(NBD_ERR.ENOSPC, 'the server has no space left for this write');
      case 'read-only':
      case 'frozen':
      case 'locked':
        return new NbdError(NBD_ERR.EPERM, `the volume takes no writes now (${e.code})`);
      case 'unsupported':
        return new NbdError(NBD_ERR.ENOTSUP, 'the server does not support this request');
      case 'closed':
      case 'aborted':
        return new NbdError(NBD_ERR.ESHUTDOWN, 'the server is shutting down');
      case 'checksum-mismatch':
        return new NbdError(NBD_ERR.EIO, 'stored data failed its checksum; the server\'s log names the damaged range');
      default:
        return new NbdError(NBD_ERR.EIO, `the server could not complete the request (${e.code}); its log has the details`);
    }
  }
  return new NbdError(NBD_ERR.EIO, 'the server could not complete the request; its log has the details');
}
