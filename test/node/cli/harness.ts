import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { main, type CliIo } from '../../../src/cli/main.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `stratadisk ...argv` in-process with captured output. */
export async function cli(argv: string[], extra: Partial<CliIo> & { stdinBytes?: Uint8Array } = {}): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const { stdinBytes, ...rest } = extra;
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    isTTY: false,
    ...(stdinBytes ? { stdin: Readable.from([Buffer.from(stdinBytes)]) } : {}),
    ...rest,
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

/** Runs and expects exit 0, returning stdout (failing with stderr otherwise). */
export async function ok(argv: string[], extra: Parameters<typeof cli>[1] = {}): Promise<string> {
  const r = await cli(argv, extra);
  if (r.code !== 0) throw new Error(`stratadisk ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'stratadisk-cli-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic non-zero bytes. */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = (x & 0xff) | 1;
  }
  return b;
}

/**
 * Starts a long-running command (a server) in-process; `firstLine()` waits for its first line of
 * stdout (a URI, "Serving ..."), `stop()` is Ctrl-C, `done` its exit code.
 */
export function startCli(argv: string[]) {
  const ac = new AbortController();
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, isTTY: false, signal: ac.signal };
  const done = main(argv, io);
  const firstLine = async (): Promise<string> => {
    for (let i = 0; i < 200 && !stdout.includes('\n'); i++) await new Promise((r) => setTimeout(r, 25));
    if (!stdout.includes('\n')) throw new Error(`stratadisk ${argv[0]} printed nothing; stderr: ${stderr}`);
    return stdout.trim();
  };
  return { firstLine, stop: () => ac.abort(), done, out: () => ({ stdout, stderr }) };
}
