import type { BenchResult } from '../../bench/result.js';
import { StrataError } from '../../errors.js';
import { JSON_OPTION, type Command } from '../command.js';
import { line, table, UsageError, type RunBenchmarks } from '../io.js';

/** Not a literal, so tsc neither needs the module to exist nor pulls it into the CLI's own graph. */
const BENCH_MODULE = '../../bench/index.js';

export const bench: Command = {
  name: 'bench',
  summary: 'run the benchmarks: our figure, a peer\'s figure from the same run, their ratio',
  usage: 'bench [--json] [--quick] [--only NAME,...]',
  details: [
    '  --json         one JSON object (a BenchResult) per line, printed as each benchmark finishes',
    '  --quick        shorter runs (less precise)',
    '  --only NAMES   comma-separated benchmark names to run',
    'Without --json: a table of ours, peer, ratio, target and whether it was met.',
  ].join('\n'),
  options: { ...JSON_OPTION, quick: { type: 'boolean' }, only: { type: 'string' } },
  positionals: { min: 0, max: 0 },
  async run({ io, values }) {
    const only = typeof values.only === 'string' ? values.only.split(',').map((s) => s.trim()).filter((s) => s !== '') : undefined;
    let run = io.runBenchmarks;
    if (!run) {
      const mod = await loadBenchModule();
      const known = mod.BENCH_GROUPS;
      const unknown = known ? only?.find((g) => !known.includes(g)) : undefined;
      if (unknown !== undefined) throw new UsageError(`--only: unknown benchmark "${unknown}" (known: ${known!.join(', ')})`, 'bench');
      run = mod.runBenchmarks;
    }
    const json = values.json === true;
    const results = await run({
      ...(values.quick ? { quick: true } : {}),
      ...(only ? { only } : {}),
      onResult: json ? (r) => line(io.stdout, JSON.stringify(r)) : undefined,
    });
    if (!json) line(io.stdout, benchTable(results));
    return 0;
  },
};

interface BenchModule {
  runBenchmarks: RunBenchmarks;
  BENCH_GROUPS?: readonly string[];
}

async function loadBenchModule(): Promise<BenchModule> {
  let mod: Partial<BenchModule>;
  try {
    mod = (await import(BENCH_MODULE)) as Partial<BenchModule>;
  } catch (e) {
    throw new StrataError('unsupported', `The benchmarks are not available in this build (${BENCH_MODULE} did not load: ${(e as Error).message.split('\n')[0]}).`, { cause: e });
  }
  if (typeof mod.runBenchmarks !== 'function') throw new StrataError('unsupported', `The benchmarks module has no runBenchmarks function.`);
  return mod as BenchModule;
}

/** The human-readable table of `bench` (exported for tests). */
export function benchTable(results: BenchResult[]): string {
  return table(
    ['benchmark', 'ours', 'peer', 'unit', 'peer name', 'ratio', 'target', 'met'],
    results.map((r) => [r.name, r.ours, r.peer, r.unit, r.peerName, r.ratioMin === undefined ? r.ratio : `${r.ratio} (${r.ratioMin}–${r.ratioMax})`, r.target ?? '-', r.met === undefined ? '-' : r.met ? 'yes' : 'NO']),
  );
}
