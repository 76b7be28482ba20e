/**
 * Debian's native `b3sum` (the official Rust BLAKE3, SIMD up to AVX-512, multithreaded) as the
 * physical anchor of the BLAKE3 kernel benchmark. Node-only: src/bench/kernels.ts imports this
 * file only under Node. The input is a file in tmpfs (/dev/shm), so b3sum reads it from memory;
 * each run is timed by bash's `time` (wall, user and system seconds of b3sum itself, from
 * wait4's rusage), so neither Node's spawn cost nor the 10 ms tick of /proc counters enters it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const B3SUM = '/usr/bin/b3sum';

/** One timed b3sum run: throughput over the file, and CPU seconds (user+system, all threads). */
export interface B3sumRun {
  gbs: number;
  cpuSeconds: number;
}

export class B3sumPeer {
  private constructor(private readonly dir: string, readonly file: string, readonly bytes: number, readonly version: string) {}

  /**
   * Writes `copies` copies of `data` to a 0600 file in tmpfs; undefined when b3sum or bash is
   * not installed (the rows are then left out).
   */
  static async create(data: Uint8Array, copies: number): Promise<B3sumPeer | undefined> {
    if (!existsSync(B3SUM) || !existsSync('/bin/bash')) return undefined;
    const version = (await run(B3SUM, ['--version'])).stdout.trim();
    const dir = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'stratadisk-b3sum-'));
    const file = join(dir, 'input');
    const fh = await open(file, 'w', 0o600);
    try {
      for (let i = 0; i < copies; i++) await fh.write(data);
    } finally {
      await fh.close();
    }
    return new B3sumPeer(dir, file, data.length * copies, version);
  }

  /** b3sum's hash of the file, as hex. */
  async hash(): Promise<string> {
    const { stdout } = await run(B3SUM, ['--no-names', this.file]);
    return stdout.trim();
  }

  /** One run with `threads` threads (b3sum's default, one per core, when undefined). */
  async time(threads?: number): Promise<B3sumRun> {
    const args = threads === undefined ? '' : `--num-threads ${threads} `;
    const script = `TIMEFORMAT='%3R %3U %3S'; time ${B3SUM} ${args}--no-names "$1" > /dev/null`;
    const { stderr } = await run('/bin/bash', ['-c', script, 'bash', this.file]);
    const [wall, user, sys] = stderr.trim().split(/\s+/).slice(-3).map(Number) as [number, number, number];
    if (!(wall > 0)) throw new Error(`b3sum timing not understood: ${stderr}`);
    return { gbs: this.bytes / wall / 1e9, cpuSeconds: user + sys };
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
