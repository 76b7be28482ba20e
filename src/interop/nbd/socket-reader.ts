import type { Socket } from 'node:net';

/** The peer closed the connection (or it was destroyed) before the bytes asked for arrived. */
export class ConnectionEnded extends Error {
  override name = 'ConnectionEnded';
}

/** Buffered bytes beyond which the socket is paused until someone reads (the largest request is read whole). */
const HIGH_WATER = 4 << 20;

/**
 * Exact-length reads from a socket: `read(n)` resolves with the next n bytes. The socket is
 * paused while enough is buffered and nobody waits, so a client that floods us is throttled by
 * TCP instead of growing our memory.
 */
export class SocketReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private ended = false;

  private readonly onData: (d: Buffer) => void;
  private readonly onEnd: () => void;

  /** `initial`: bytes of this stream already read elsewhere (a connection handed over). */
  constructor(
    private readonly socket: Socket,
    initial?: Buffer,
  ) {
    if (initial && initial.length > 0) {
      this.chunks.push(initial);
      this.buffered = initial.length;
    }
    this.onData = (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.serve();
      if (this.buffered > HIGH_WATER && !this.waiter) socket.pause();
    };
    this.onEnd = () => {
      this.ended = true;
      const w = this.waiter;
      this.waiter = null;
      w?.reject(new ConnectionEnded('the client closed the connection'));
    };
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  /**
   * Stop reading and return the bytes read but not consumed, to hand the connection to another
   * process (child_process send with the socket, in this same turn of the event loop). The
   * socket's handle stops reading at once: a paused stream's handle would otherwise go on reading
   * into a buffer nobody takes, and after the hand-over into nothing. Not while a read() waits.
   */
  detach(): Buffer {
    this.socket.pause();
    (this.socket as unknown as { _handle?: { readStop?: () => number } })._handle?.readStop?.();
    return this.release();
  }

  /**
   * Stop listening and return the bytes read but not consumed, leaving the socket paused but its
   * handle reading: for a TLS upgrade of the socket (node:tls takes over the handle's reads,
   * which a readStop would leave stopped), done in this same turn of the event loop.
   */
  release(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    this.socket.pause();
    for (let c = this.socket.read() as Buffer | null; c !== null; c = this.socket.read() as Buffer | null) this.chunks.push(c);
    const rest = Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  /** The next `n` bytes if they are already buffered (no promise, no turn of the event loop), else null. */
  tryRead(n: number): Buffer | null {
    return !this.waiter && this.buffered >= n ? this.take(n) : null;
  }

  /** The next `n` bytes; rejects with ConnectionEnded if the stream ends first. */
  read(n: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new Error('SocketReader: one read at a time'));
    if (this.buffered >= n) return Promise.resolve(this.take(n));
    if (this.ended) return Promise.reject(new ConnectionEnded('the client closed the connection'));
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.socket.resume();
    });
  }

  private serve(): void {
    const w = this.waiter;
    if (w && this.buffered >= w.n) {
      this.waiter = null;
      w.resolve(this.take(w.n));
    }
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first && first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
