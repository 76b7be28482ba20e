import type { Store } from '../store/store.js';

/**
 * Sequential reads of a store in large chunks, so replaying a log (a layer's map, the write log)
 * costs few store calls. `get` returns a view into the current chunk: copy what you keep.
 */
export class ChunkReader {
  private buf: Uint8Array = new Uint8Array(0);
  private bufAt = 0;
  constructor(
    readonly store: Store,
    private readonly chunk: number,
  ) {}

  /** Bytes [at, at+len), or null when the store ends first. `len` is bounded by the caller. */
  async get(at: number, len: number): Promise<Uint8Array | null> {
    if (at + len > this.store.size) return null;
    if (at >= this.bufAt && at + len <= this.bufAt + this.buf.length) return this.buf.subarray(at - this.bufAt, at - this.bufAt + len);
    const n = Math.min(this.store.size - at, Math.max(len, this.chunk));
    this.buf = await this.store.read(at, n);
    this.bufAt = at;
    return this.buf.subarray(0, len);
  }
}
