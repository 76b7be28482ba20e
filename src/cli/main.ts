#!/usr/bin/env node
/**
 * The `stratadisk` command. `main(argv, io)` runs one command in-process and resolves to its
 * exit code (tests call it directly); run as a script, it uses the process's streams and exits.
 *
 * Exit codes: 0 ok; 1 `check` found problems or `compare` found a difference; 2 bad arguments
 * or a failed operation; 130 interrupted (Ctrl-C). Errors are one line on stderr,
 * `stratadisk: <code>: <message>`, never a stack trace (set STRATADISK_DEBUG=1 to get one).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { StrataError } from '../errors.js';
import { redactSecrets } from '../util/redact.js';
import type { Command, Context } from './command.js';
import { COMMANDS, findCommand } from './commands/index.js';
import { EXIT, Interrupted, line, UsageError, type CliIo } from './io.js';
import { Progress } from './progress.js';

export type { CliIo } from './io.js';

/** The package version, read from package.json next to src/ or dist/. */
export function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The top-level help text. */
export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: stratadisk COMMAND [ARGS] [OPTIONS]',
    '',
    'A volume is a directory; DIR@NAME names one of its snapshots (read-only).',
    'Sizes and offsets take bytes or K, M, G, T suffixes (powers of 1024): 64K, 1G, 1.5G.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `stratadisk COMMAND --help` for a command\'s arguments; `stratadisk --version` for the version.',
    'Exit codes: 0 ok, 1 problems found / images differ (check, compare), 2 error, 130 interrupted.',
  ].join('\n');
}

/** The help text of one command. */
export function commandUsage(c: Command): string {
  return [`Usage: stratadisk ${c.usage}`, '', `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`, ...(c.details ? ['', c.details] : [])].join('\n');
}

/** Runs `stratadisk ...argv` and resolves to the exit code. Never throws. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  if (io.signal?.aborted) controller.abort();
  io.signal?.addEventListener('abort', onAbort);
  let interrupts = 0;
  const onSigint = () => {
    // First Ctrl-C: stop at the next batch boundary and close cleanly. Second: give up now.
    if (++interrupts > 1) process.exit(EXIT.interrupted);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    return await dispatch(argv, io, controller.signal);
  } catch (e) {
    return report(e, io, controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
    io.signal?.removeEventListener('abort', onAbort);
  }
}

async function dispatch(argv: string[], io: CliIo, signal: AbortSignal): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    line(io.stderr, usage());
    return EXIT.error;
  }
  if (first === '--help' || first === '-h') {
    line(io.stdout, usage());
    return EXIT.ok;
  }
  if (first === '--version' || first === '-V') {
    line(io.stdout, `stratadisk ${version()}`);
    return EXIT.ok;
  }
  if (first === 'help') {
    if (rest.length === 0) {
      line(io.stdout, usage());
      return EXIT.ok;
    }
    const c = findCommand(rest[0]!);
    if (!c) throw new UsageError(`unknown command "${rest[0]}"`);
    line(io.stdout, commandUsage(c));
    return EXIT.ok;
  }
  const command = findCommand(first);
  if (!command) {
    if (first.startsWith('-')) throw new UsageError(`unknown option "${first}" (options go after the command)`);
    throw new UsageError(`unknown command "${first}"`);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    // parseArgs explains at length; its first sentence is the useful part.
    throw new UsageError(String((e as Error).message).split(/\. |\n/)[0]!.replace(/\.$/, ''), command.name);
  }
  if (parsed.values.help) {
    line(io.stdout, commandUsage(command));
    return EXIT.ok;
  }
  const args = parsed.positionals;
  const { min, max } = command.positionals;
  if (args.length < min) throw new UsageError(`missing arguments: usage is \`stratadisk ${command.usage}\``, command.name);
  if (max !== undefined && args.length > max) throw new UsageError(`unexpected argument "${args[max]}": usage is \`stratadisk ${command.usage}\``, command.name);
  const ctx: Context = {
    io,
    args,
    values: parsed.values as Context['values'],
    signal,
    progress: (label, total) => new Progress(io.stderr, label, total, io.isTTY === true),
    runCommand: (argv2, io2) => main(argv2, io2),
  };
  return command.run(ctx);
}

/** One line on stderr for any failure, and the exit code that goes with it. */
function report(e: unknown, io: CliIo, signal: AbortSignal): number {
  if (e instanceof Interrupted) {
    line(io.stderr, `stratadisk: interrupted; ${oneLine(e.kept)}.`);
    return EXIT.interrupted;
  }
  if ((e instanceof StrataError && e.code === 'aborted') || (signal.aborted && !(e instanceof UsageError))) {
    line(io.stderr, 'stratadisk: interrupted; the volume was closed cleanly (work finished before the interrupt is kept).');
    return EXIT.interrupted;
  }
  if (e instanceof UsageError) {
    const where = e.command ? `${e.command}: ` : '';
    const hint = e.command ? `stratadisk ${e.command} --help` : 'stratadisk --help';
    line(io.stderr, `stratadisk: ${where}${oneLine(e.message)} (see \`${hint}\`)`);
  } else if (e instanceof StrataError) {
    line(io.stderr, `stratadisk: ${e.code}: ${oneLine(e.message)}`);
  } else {
    line(io.stderr, `stratadisk: internal error: ${oneLine(e instanceof Error ? e.message : String(e))}`);
  }
  if (process.env.STRATADISK_DEBUG === '1' && e instanceof Error && e.stack) line(io.stderr, e.stack);
  return EXIT.error;
}

/** One line, with every known secret (tokens read, `#token=` values) redacted. */
function oneLine(s: string): string {
  return redactSecrets(s.replace(/\s*\n\s*/g, ' ').trim());
}

function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, isTTY: process.stderr.isTTY === true, stdin: process.stdin };
}

/** True when this module is the program node was started with (also through an npm bin symlink). */
function isEntry(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url || realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntry()) {
  // `stratadisk map DIR | head` closes the pipe early: that is not an error worth a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.ok);
    throw e;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    () => {
      process.exitCode = EXIT.error;
    },
  );
}
