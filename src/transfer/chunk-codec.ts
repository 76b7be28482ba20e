/**
 * Per-chunk compression with the platform's CompressionStream ('deflate-raw'), and inflation
 * with a bound: a stored chunk never inflates past the size its table says, however it was made.
 */
import { StrataError } from '../errors.js';

async function collect(readable: ReadableStream<Uint8Array>, max: number, what: string): Promise<Uint8Array> {
  const reader = readable.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > max) {
        await reader.cancel().catch(() => {});
        throw new StrataError('corrupt', `${what} inflates to more than ${max} bytes.`);
      }
      parts.push(value);
    }
  } catch (e) {
    if (e instanceof StrataError) throw e;
    throw new StrataError('corrupt', `${what} is not valid deflate data (${e instanceof Error ? e.message : String(e)}).`, { cause: e });
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function run(stream: CompressionStream | DecompressionStream, data: Uint8Array, max: number, what: string): Promise<Uint8Array> {
  const writer = stream.writable.getWriter();
  // The write side's outcome is reported by the read side; its rejection must not go unhandled.
  writer.write(data as Uint8Array<ArrayBuffer>).catch(() => {});
  writer.close().catch(() => {});
  return collect(stream.readable, max, what);
}

/** deflate-raw of `data` */
export function deflateChunk(data: Uint8Array): Promise<Uint8Array> {
  return run(new CompressionStream('deflate-raw'), data, data.length + 1024 + (data.length >>> 4), 'a chunk being compressed');
}

/** Inflate `stored`, refusing more than `max` bytes of output. */
export function inflateChunk(stored: Uint8Array, max: number, what: string): Promise<Uint8Array> {
  return run(new DecompressionStream('deflate-raw'), stored, max, what);
}
