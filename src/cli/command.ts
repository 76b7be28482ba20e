import type { ParseArgsConfig } from 'node:util';
import { Progress } from './progress.js';
import type { CliIo } from './io.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** What a command's `run` gets: parsed arguments, the output streams, and the cancel signal. */
export interface Context {
  io: CliIo;
  /** positional arguments after the command name */
  args: string[];
  /** option values as parsed by `node:util` parseArgs */
  values: Record<string, string | boolean | undefined>;
  /** fires on Ctrl-C (or `io.signal`) */
  signal: AbortSignal;
  /** A progress bar on stderr when it is a terminal; inert otherwise. */
  progress(label: string, total: number): Progress;
  /** Run another stratadisk command line in this process, with its own output streams (the tour shows real commands). */
  runCommand(argv: string[], io: CliIo): Promise<number>;
}

/** One `stratadisk` subcommand; each lives in its own file under commands/. */
export interface Command {
  name: string;
  /** one line for the command list */
  summary: string;
  /** the synopsis after `stratadisk `, e.g. `create DIR --size SIZE [--block-size SIZE]` */
  usage: string;
  /** further lines of `stratadisk COMMAND --help` (options, exit codes, examples) */
  details?: string;
  options?: Options;
  /** positional argument count; `max` undefined = unlimited */
  positionals: { min: number; max?: number };
  run(ctx: Context): Promise<number>;
}

/** `--json` is common enough to share its definition. */
export const JSON_OPTION = { json: { type: 'boolean' } } as const satisfies Options;
