import { StrataError } from '../errors.js';
import type { Link } from '../consistency/link.js';
import { PROTOCOL, MAX_IO, MAX_SEGMENTS_PER_REQUEST, decodeList, encodeList, parseReply, parseRequest, wireBytes, type Reply, type Request } from './protocol.js';
import type { ResyncSide } from './side.js';

/**
 * A resync side over a Link: `serveResyncSide` answers for a local side; `remoteSide` is the
 * ResyncSide the engine uses at the other end. Checksums travel in batches (one `known` or
 * `hash` request per window, up to MAX_SEGMENTS_PER_REQUEST), data in runs up to MAX_IO.
 * Both ends count the bytes they put on and take off the link (JSON plus payload).
 */
export interface WireCount {
  sent: number;
  received: number;
}

/** Serve `side` on `link` until it closes. `writable` false refuses writes even on a writable side. */
export function serveResyncSide(link: Link, side: ResyncSide, options: { writable?: boolean } = {}): { wire: WireCount; closed: Promise<string> } {
  const writable = (options.writable ?? false) && side.writable;
  const wire: WireCount = { sent: 0, received: 0 };
  let queue: Promise<void> = Promise.resolve();
  let closeResolve!: (r: string) => void;
  const closed = new Promise<string>((r) => (closeResolve = r));
  const send = (msg: Reply): void => {
    wire.sent += wireBytes(msg as unknown as Record<string, unknown>);
    link.send(msg);
  };
  const answer = async (req: Request): Promise<void> => {
    switch (req.t) {
      case 'hello':
        if (req.protocol !== PROTOCOL) throw new StrataError('unsupported', `The peer speaks ${req.protocol}; this side speaks ${PROTOCOL}.`);
        return send({ t: 'info', id: req.id, size: side.size, segmentSize: side.segmentSize, writable, identity: side.identity, label: side.label });
      case 'known': {
        const total = Math.ceil(side.size / side.segmentSize);
        if (req.first + req.count > total) throw new StrataError('out-of-range', `Segments ${req.first}+${req.count} are beyond the ${total} of ${side.label}.`);
        const k = await side.known(req.first, req.count);
        const data = new Uint8Array(req.count * 17);
        data.set(k.valid, 0);
        data.set(k.hashes, req.count);
        return send({ t: 'data', id: req.id, data });
      }
      case 'hash': {
        const before = side.bytesHashed;
        const data = await side.hash(decodeList(req.data));
        return send({ t: 'data', id: req.id, data, hashed: side.bytesHashed - before });
      }
      case 'read':
        return send({ t: 'data', id: req.id, data: await side.read(req.offset, req.length) });
      case 'write':
        if (!writable) throw new StrataError('read-only', `${side.label} is served read-only.`);
        await side.write(req.offset, req.data);
        return send({ t: 'ok', id: req.id });
      case 'flush':
        if (writable) await side.flush();
        return send({ t: 'ok', id: req.id });
    }
  };
  link.listen({
    message(m) {
      wire.received += m && typeof m === 'object' ? wireBytes(m as Record<string, unknown>) : 0;
      let req: Request;
      try {
        req = parseRequest(m);
      } catch (e) {
        // a peer that sends garbage gets no more answers
        const id = m && typeof m === 'object' && Number.isSafeInteger((m as { id?: unknown }).id) ? (m as { id: number }).id : -1;
        if (id >= 0) send({ t: 'error', id, code: 'corrupt', message: (e as Error).message });
        link.close();
        return;
      }
      // one request at a time, in order (writes before the flush that follows them)
      queue = queue.then(() =>
        answer(req).catch((e: unknown) => {
          const err = e instanceof StrataError ? e : new StrataError('io', e instanceof Error ? e.message : String(e));
          send({ t: 'error', id: req.id, code: err.code, message: err.message });
        }),
      );
    },
    close(reason) {
      closeResolve(reason);
    },
  });
  return { wire, closed };
}

/** The side served at the other end of `link` (after its hello). */
export async function remoteSide(link: Link): Promise<RemoteSide> {
  const r = new RemoteSide(link);
  const info = await r.call({ t: 'hello', id: 0, protocol: PROTOCOL });
  if (info.t !== 'info') throw new StrataError('corrupt', 'The resync peer did not say what it serves.');
  r.init(info);
  return r;
}

export class RemoteSide implements ResyncSide {
  label = 'remote';
  size = 0;
  segmentSize = 0;
  writable = false;
  identity = '';
  bytesHashed = 0;
  readonly wire: WireCount = { sent: 0, received: 0 };
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: unknown) => void }>();
  private closedReason: string | null = null;

  constructor(private readonly link: Link) {
    link.listen({
      message: (m) => {
        this.wire.received += m && typeof m === 'object' ? wireBytes(m as Record<string, unknown>) : 0;
        let rep: Reply;
        try {
          rep = parseReply(m);
        } catch (e) {
          this.fail(`it sent a malformed message: ${(e as Error).message}`);
          return;
        }
        const p = this.pending.get(rep.id);
        if (!p) return this.fail(`it answered request ${rep.id}, which is not pending`);
        this.pending.delete(rep.id);
        if (rep.t === 'error') p.reject(new StrataError(rep.code, `${this.label}: ${rep.message}`));
        else p.resolve(rep);
      },
      close: (reason) => this.fail(`the link closed (${reason})`),
    });
  }

  init(info: Reply & { t: 'info' }): void {
    this.label = `${info.label} (remote)`;
    this.size = info.size;
    this.segmentSize = info.segmentSize;
    this.writable = info.writable;
    this.identity = `remote:${info.identity}`;
  }

  call(req: Request): Promise<Reply> {
    if (this.closedReason !== null) return Promise.reject(new StrataError('io', `The resync peer is gone: ${this.closedReason}.`));
    const id = req.id === 0 ? 0 : this.nextId++;
    const msg = { ...req, id };
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.wire.sent += wireBytes(msg as unknown as Record<string, unknown>);
      this.link.send(msg);
    });
  }

  private fail(reason: string): void {
    if (this.closedReason === null) this.closedReason = reason;
    const err = new StrataError('io', `The resync peer is gone: ${reason}.`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.link.close();
  }

  private async data(req: Request, expect: number): Promise<Uint8Array> {
    const rep = await this.call(req);
    if (rep.t !== 'data' || rep.data.length !== expect) {
      this.fail('it answered with the wrong amount of data');
      throw new StrataError('corrupt', `${this.label} answered with the wrong amount of data.`);
    }
    if (rep.hashed !== undefined) this.bytesHashed += rep.hashed;
    return rep.data;
  }

  async known(first: number, count: number): Promise<{ valid: Uint8Array; hashes: Uint8Array }> {
    const valid = new Uint8Array(count);
    const hashes = new Uint8Array(count * 16);
    for (let at = 0; at < count; at += MAX_SEGMENTS_PER_REQUEST) {
      const n = Math.min(MAX_SEGMENTS_PER_REQUEST, count - at);
      const d = await this.data({ t: 'known', id: -1, first: first + at, count: n }, n * 17);
      for (let k = 0; k < n; k++) valid[at + k] = d[k] === 1 ? 1 : 0;
      hashes.set(d.subarray(n, n * 17), at * 16);
    }
    return { valid, hashes };
  }

  async hash(list: readonly number[]): Promise<Uint8Array> {
    const out = new Uint8Array(list.length * 16);
    for (let at = 0; at < list.length; at += MAX_SEGMENTS_PER_REQUEST) {
      const part = list.slice(at, at + MAX_SEGMENTS_PER_REQUEST);
      out.set(await this.data({ t: 'hash', id: -1, data: encodeList(part) }, part.length * 16), at * 16);
    }
    return out;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    for (let at = 0; at < length; at += MAX_IO) {
      const n = Math.min(MAX_IO, length - at);
      out.set(await this.data({ t: 'read', id: -1, offset: offset + at, length: n }, n), at);
    }
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (!this.writable) throw new StrataError('read-only', `${this.label} is served read-only.`);
    for (let at = 0; at < data.length; at += MAX_IO) {
      const rep = await this.call({ t: 'write', id: -1, offset: offset + at, data: data.subarray(at, Math.min(data.length, at + MAX_IO)) });
      if (rep.t !== 'ok') throw new StrataError('corrupt', `${this.label} did not confirm a write.`);
    }
  }

  async flush(): Promise<void> {
    const rep = await this.call({ t: 'flush', id: -1 });
    if (rep.t !== 'ok') throw new StrataError('corrupt', `${this.label} did not confirm a flush.`);
  }

  close(): void {
    this.link.close();
  }
}
