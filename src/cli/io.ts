import type { Readable } from 'node:stream';
import { StrataError } from '../errors.js';
import type { BenchResult } from '../bench/result.js';

/** Something text can be written to: `process.stdout`, or a test's collector. */
export interface TextSink {
  write(text: string): unknown;
}

/** The signature of `runBenchmarks` in src/bench/index.ts (loaded lazily by the `bench` command). */
export type RunBenchmarks = (opts: { quick?: boolean; only?: string[]; onResult?: (r: BenchResult) => void }) => Promise<BenchResult[]>;

/**
 * Where the CLI reads and writes. `main()` defaults every field to the process's own streams;
 * tests pass collectors. The optional fields are seams for tests and embedders.
 */
export interface CliIo {
  stdout: TextSink;
  stderr: TextSink;
  /** Whether stderr is a terminal: progress bars are drawn only then. */
  isTTY?: boolean;
  /** Input for `write DIR --offset N -`. Default: process.stdin. */
  stdin?: Readable | AsyncIterable<Uint8Array>;
  /** Aborting it cancels the running command like Ctrl-C does (exit 130). */
  signal?: AbortSignal;
  /** Replaces the lazily imported src/bench/index.ts `runBenchmarks` (tests). */
  runBenchmarks?: RunBenchmarks;
}

/** Exit codes, shared by every command. */
export const EXIT = {
  ok: 0,
  /** `check` found problems, `compare` found a difference */
  different: 1,
  /** bad arguments, bad input, or an operation failed */
  error: 2,
  /** cancelled by Ctrl-C (128 + SIGINT), as shells report it */
  interrupted: 130,
} as const;

/** A mistake in the command line: printed as one line, exit 2, with a hint to `--help`. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/**
 * An interruption that says what was kept: the CLI prints `stratadisk: interrupted; <kept>`
 * instead of its generic line (which speaks of a volume closed with its finished work kept).
 */
export class Interrupted extends StrataError {
  constructor(
    readonly kept: string,
    options?: { cause?: unknown },
  ) {
    super('aborted', `Interrupted; ${kept}.`, options);
  }
}

/**
 * The error to report for a failure of a command that was writing somewhere: the same failure
 * (an interruption when `signal` fired), its message completed with `kept`, a clause saying
 * what is at the destination now ("nothing was written at out.raw").
 */
export function withKept(e: unknown, kept: string, signal: AbortSignal): StrataError {
  if (signal.aborted || (e instanceof StrataError && e.code === 'aborted')) return new Interrupted(kept, { cause: e });
  const clause = kept[0]!.toUpperCase() + kept.slice(1) + '.';
  if (e instanceof StrataError) return new StrataError(e.code, `${e.message.replace(/\s*$/, '')} ${clause}`, { cause: e });
  return new StrataError('io', `${e instanceof Error ? e.message : String(e)}. ${clause}`, { cause: e });
}

/** Throws `aborted` once `signal` fired; long commands call it between batches. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new StrataError('aborted', 'Interrupted.');
}

/** Writes one line to a sink. */
export function line(sink: TextSink, text = ''): void {
  sink.write(text + '\n');
}

/** Formats rows as left-aligned columns (numbers right-aligned) with a header row. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const numeric = header.map((_, c) => rows.length > 0 && rows.every((r) => typeof r[c] === 'number'));
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  return cells
    .map((r) => r.map((cell, c) => (numeric[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd())
    .join('\n');
}
