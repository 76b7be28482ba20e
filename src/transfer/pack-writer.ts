/**
 * Fills packs (README.md, "Chunks and packs"): chunks back to back, each raw or deflate-raw when
 * that saves at least 1/8 of it; a pack closes before it would pass `maxBytes` (16 MiB).
 */
import { deflateChunk } from './chunk-codec.js';
import { CODEC_DEFLATE, CODEC_RAW, type PackEntry } from './pack-index.js';

export const PACK_BYTES = 16 * 1024 * 1024;

export interface FinishedPack {
  bytes: Uint8Array;
  entries: PackEntry[];
  /** raw bytes of its chunks */
  rawBytes: number;
}

export interface EncodedChunk {
  stored: Uint8Array;
  codec: number;
}

/** A chunk as a pack stores it with compression on: deflate-raw when that saves at least 1/8, else raw. */
export async function encodeChunk(data: Uint8Array): Promise<EncodedChunk> {
  const z = await deflateChunk(data);
  return z.length <= data.length - data.length / 8 ? { stored: z, codec: CODEC_DEFLATE } : { stored: data, codec: CODEC_RAW };
}

export class PackWriter {
  private buf: Uint8Array | null = null;
  private used = 0;
  private rawBytes = 0;
  private entries: PackEntry[] = [];

  constructor(private readonly options: { compress?: boolean; maxBytes?: number } = {}) {}

  get maxBytes(): number {
    return this.options.maxBytes ?? PACK_BYTES;
  }

  get pending(): number {
    return this.entries.length;
  }

  /**
   * Add a chunk; returns the pack it closed to make room, if any. With compression on, `encoded`
   * is the chunk's {@link encodeChunk} when the caller made it already (many at once: deflate
   * runs off the main thread, so a batch of chunks compresses on every core).
   */
  async add(id: Uint8Array, data: Uint8Array, encoded?: EncodedChunk): Promise<FinishedPack | null> {
    const { stored, codec } = this.options.compress ? (encoded ?? (await encodeChunk(data))) : { stored: data, codec: CODEC_RAW };
    let closed: FinishedPack | null = null;
    if (this.used > 0 && this.used + stored.length > this.maxBytes) closed = this.finish();
    this.buf ??= new Uint8Array(Math.max(this.maxBytes, stored.length));
    this.buf.set(stored, this.used);
    this.entries.push({ id: id.slice(), offset: this.used, stored: stored.length, raw: data.length, codec });
    this.used += stored.length;
    this.rawBytes += data.length;
    return closed;
  }

  /** Close the open pack (null when it is empty). */
  finish(): FinishedPack | null {
    if (this.used === 0 || !this.buf) return null;
    const pack = { bytes: this.buf.subarray(0, this.used), entries: this.entries, rawBytes: this.rawBytes };
    this.buf = null;
    this.used = 0;
    this.rawBytes = 0;
    this.entries = [];
    return pack;
  }
}
