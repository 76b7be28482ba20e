import { createReadStream, statSync } from 'node:fs';
import { StrataError } from '../errors.js';
import { nodeError } from '../store/node-file.js';
import type { Volume } from '../volume/volume.js';
import { throwIfAborted } from './io.js';
import type { Progress } from './progress.js';

/** Bytes handed to Volume.write per call: big enough to amortise, bounded in memory. */
export const BATCH = 8 << 20;

/**
 * Writes everything `input` yields into `v` from `offset` on, in BATCH-sized writes (the volume
 * stores no data for all-zero blocks), checking `signal` between batches. Returns the bytes written.
 * Does not flush: the caller does, once, at the end.
 */
export async function copyIn(
  v: Volume,
  offset: number,
  input: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
  progress?: Progress,
): Promise<number> {
  const batch = new Uint8Array(BATCH);
  let fill = 0;
  let written = 0;
  const put = async (n: number) => {
    throwIfAborted(signal);
    if (offset + written + n > v.size) {
      throw new StrataError('out-of-range', `The input does not fit: it runs past the end of the volume (${v.size} bytes) after ${v.size - offset} bytes from offset ${offset}. Nothing past the end was written.`);
    }
    await v.write(offset + written, batch.subarray(0, n));
    written += n;
    progress?.update(written);
  };
  for await (const chunk of input) {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, BATCH - fill);
      batch.set(chunk.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === BATCH) {
        await put(fill);
        fill = 0;
      }
    }
    throwIfAborted(signal);
  }
  if (fill > 0) await put(fill);
  return written;
}

/** A regular file's size, or a clear error when it is missing or not a file. */
export function inputFileSize(path: string): number {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('not-found', `${path} does not exist; check the path of the input file.`, { cause: e });
    throw nodeError(e, `read ${path}`, false);
  }
  if (!st.isFile()) throw new StrataError('invalid-argument', `${path} is not a regular file; give a raw image file (or - for standard input, with \`write\`).`);
  return st.size;
}

/** Reads a file as a stream of large chunks; fs errors become StrataErrors. */
export async function* readFileChunks(path: string): AsyncGenerator<Uint8Array> {
  const stream = createReadStream(path, { highWaterMark: BATCH });
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (e) {
    throw nodeError(e, `read ${path}`, false);
  } finally {
    stream.destroy();
  }
}
