import { randomBytes } from 'node:crypto';
import { open as fsOpen, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../errors.js';
import { nodeError } from '../store/node-file.js';
import { BATCH } from './copy-in.js';

/** Input kept in memory before the rest goes to a spool file: bounds memory whatever the input size. */
export const SPOOL_MEMORY_BYTES = 32 << 20;

/** Input of unknown size (standard input), read to its end and known to fit. */
export interface SpooledInput {
  readonly size: number;
  /** whether it went to a spool file (more than SPOOL_MEMORY_BYTES) */
  readonly spilled: boolean;
  /** The input again, in order, in chunks of at most BATCH bytes (a chunk is valid until the next is pulled). */
  chunks(): AsyncGenerator<Uint8Array>;
  close(): Promise<void>;
}

/**
 * Reads `input` to its end before anything is written anywhere, so that input larger than
 * `limit` bytes is refused (`out-of-range`, thrown as soon as byte limit+1 arrives) with nothing
 * written. Up to SPOOL_MEMORY_BYTES stay in memory; past that, everything goes to a spool file in
 * `dir` (mode 0600, unlinked at once where the OS allows, so nothing stays behind even after a
 * kill), on the file system of the volume it is meant for. `describe` names the room for messages
 * ("the 64 MiB from offset 0 to the end of vol").
 */
export async function spoolInput(input: AsyncIterable<Uint8Array | string>, limit: number, dir: string, describe: string, signal: AbortSignal): Promise<SpooledInput> {
  const memory: Uint8Array[] = [];
  let size = 0;
  let spool: Spool | undefined;
  const it = input[Symbol.asyncIterator]();
  try {
    for (;;) {
      const r = await nextOrAbort(it, signal);
      if (r.done) break;
      const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      if (size + chunk.length > limit) {
        throw new StrataError('out-of-range', `The input is larger than ${describe} (${limit} bytes): more than ${limit} bytes arrived; write less, or at a lower --offset.`);
      }
      if (spool) {
        await spool.append(chunk);
      } else if (size + chunk.length > SPOOL_MEMORY_BYTES) {
        spool = await Spool.create(dir);
        for (const m of memory) await spool.append(m);
        memory.length = 0;
        await spool.append(chunk);
      } else {
        memory.push(chunk);
      }
      size += chunk.length;
    }
  } catch (e) {
    // Stop reading, without waiting: a stream's iterator answers return() only after the read
    // it has pending, which an open, idle pipe (Ctrl-C while the producer waits) never ends.
    // A stream is also destroyed: its pending read would otherwise keep the pipe, and so the
    // process, alive until the producer closes it (a loaded CI run caught exactly that hang).
    it.return?.()?.catch(() => {});
    const stream = input as { destroy?: (error?: Error) => void };
    if (typeof stream.destroy === 'function') stream.destroy();
    await spool?.close();
    throw e;
  }
  const s = spool;
  return {
    size,
    spilled: s !== undefined,
    async *chunks() {
      if (!s) {
        yield* memory;
        return;
      }
      yield* s.chunks(size);
    },
    close: async () => {
      memory.length = 0;
      await s?.close();
    },
  };
}

/** The iterator's next value, or `aborted` as soon as `signal` fires (an idle terminal never sends more). */
function nextOrAbort<T>(it: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T>> {
  if (signal.aborted) return Promise.reject(new StrataError('aborted', 'Interrupted.'));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new StrataError('aborted', 'Interrupted.'));
    signal.addEventListener('abort', onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** An anonymous temporary file: appended to, then read back in order. */
class Spool {
  private length = 0;

  private constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
    private linked: boolean,
  ) {}

  static async create(dir: string): Promise<Spool> {
    const path = join(dir, `.stratadisk-input.${process.pid}.${randomBytes(6).toString('hex')}.spool`);
    let handle;
    try {
      handle = await fsOpen(path, 'wx+', 0o600);
    } catch (e) {
      throw nodeError(e, `create a spool file for the input in ${dir}`, true);
    }
    // POSIX keeps an unlinked open file until it is closed: no name left behind, even after a kill.
    const linked = await unlink(path).then(
      () => false,
      () => true,
    );
    return new Spool(handle, path, linked);
  }

  async append(chunk: Uint8Array): Promise<void> {
    try {
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await this.handle.write(chunk, done, chunk.length - done, this.length + done);
        done += bytesWritten;
      }
    } catch (e) {
      throw nodeError(e, `spool the input in ${this.path}`, true);
    }
    this.length += chunk.length;
  }

  async *chunks(size: number): AsyncGenerator<Uint8Array> {
    const buf = new Uint8Array(Math.min(BATCH, size));
    for (let at = 0; at < size; ) {
      const n = Math.min(buf.length, size - at);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await this.handle.read(buf, got, n - got, at + got);
        if (bytesRead === 0) throw new StrataError('io', `The input spool ${this.path} ended early at ${at + got} of ${size} bytes.`);
        got += bytesRead;
      }
      yield buf.subarray(0, n);
      at += n;
    }
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => {});
    if (this.linked) {
      this.linked = false;
      await unlink(this.path).catch(() => {});
    }
  }
}
