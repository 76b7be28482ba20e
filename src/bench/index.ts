/**
 * Entry point of the benchmarks: WASM kernels (vs hash-wasm, xxhash-wasm, TypedArray.set, TS loops)
 * and volume I/O (vs qemu-img bench on a qcow2 chain, and vs positional reads of a raw file).
 * Every result carries our figure, the peer's figure from the same run and their ratio.
 */
import type { BenchResult } from './result.js';

export type { BenchResult } from './result.js';
export { result, rate } from './result.js';

/** Names accepted by `only`. */
export const BENCH_GROUPS = ['kernels', 'chain', 'sequential'] as const;
export type BenchGroup = (typeof BENCH_GROUPS)[number];

export interface RunBenchmarksOptions {
  /** small sizes, short timings: a smoke run that finishes in seconds */
  quick?: boolean;
  /** run only these groups ('kernels', 'chain', 'sequential'); all when absent or empty */
  only?: string[];
  /** called for each result as soon as it is produced */
  onResult?: (r: BenchResult) => void;
}

export async function runBenchmarks(opts: RunBenchmarksOptions = {}): Promise<BenchResult[]> {
  const only = opts.only && opts.only.length > 0 ? new Set(opts.only) : undefined;
  if (only) {
    for (const g of only) {
      if (!(BENCH_GROUPS as readonly string[]).includes(g)) {
        throw new Error(`unknown benchmark group '${g}' (known: ${BENCH_GROUPS.join(', ')})`);
      }
    }
  }
  const want = (g: BenchGroup): boolean => !only || only.has(g);
  const quick = opts.quick === true;
  const out: BenchResult[] = [];
  const emit = (r: BenchResult): void => {
    out.push(r);
    opts.onResult?.(r);
  };
  if (want('kernels')) {
    const { benchKernels } = await import('./kernels.js');
    for (const r of await benchKernels({ quick })) emit(r);
  }
  if (want('chain')) {
    const { benchChain } = await import('./volume-io.js');
    await benchChain({ quick, onResult: emit });
  }
  if (want('sequential')) {
    const { benchSequential } = await import('./volume-io.js');
    await benchSequential({ quick, onResult: emit });
  }
  return out;
}
