/**
 * Entry point of the benchmarks: WASM kernels (vs hash-wasm, xxhash-wasm, TypedArray.set, TS loops),
 * volume I/O (vs qemu-img bench on a qcow2 chain, and vs positional reads of a raw file), qcow2
 * import/export (vs qemu-img convert), NBD serving (vs nbdkit file), provisioning from an image
 * server (vs one request per read), `copy` to a store holding the base (vs cp) and a flush-heavy
 * load of 16 writers (vs pwrite + fdatasync on a raw file, with fio as the physical anchor).
 * Every result carries our figure, the peer's figure from the same run and their ratio.
 */
import { result, type BenchResult } from './result.js';

export type { BenchResult } from './result.js';
export { result, rate } from './result.js';

/** Names accepted by `only`. */
export const BENCH_GROUPS = ['kernels', 'chain', 'sequential', 'qcow2', 'nbd', 'provision', 'commit', 'consistency', 'shadow', 'mirror', 'publish', 'copy', 'edge', 'v86', 'v86-sync', 'flush', 'journal', 'replication'] as const;
export type BenchGroup = (typeof BENCH_GROUPS)[number];

export interface RunBenchmarksOptions {
  /** small sizes, short timings: a smoke run that finishes in seconds */
  quick?: boolean;
  /** run only these groups (see {@link BENCH_GROUPS}); all when absent or empty */
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
  if (want('qcow2')) {
    const imp = await optionalModule<{ benchQcow2Import(o: { quick?: boolean }): Promise<BenchResult[]> }>('./qcow2-import.js');
    if (imp) for (const r of await imp.benchQcow2Import({ quick })) emit(r);
    else emit(missing('qcow2 import', 'qemu-img convert', 1.0, 'src/bench/qcow2-import.ts'));
    const { benchQcow2Export } = await import('./qcow2-export.js');
    for (const r of await benchQcow2Export({ quick })) emit(r);
  }
  if (want('nbd')) {
    const nbd = await optionalModule<{ benchNbd(o: { quick?: boolean }): Promise<BenchResult[]> }>('./nbd.js');
    if (nbd) for (const r of await nbd.benchNbd({ quick })) emit(r);
    else emit(missing('nbd', 'nbdkit file', 0.8, 'src/bench/nbd.ts'));
    const { benchNbdWrite } = await import('./nbd-write.js');
    for (const r of await benchNbdWrite({ quick })) emit(r);
  }
  if (want('provision')) {
    const { benchProvision } = await import('./provision.js');
    for (const r of await benchProvision({ quick })) emit(r);
  }
  if (want('commit')) {
    const { benchCommit } = await import('./commit.js');
    for (const r of await benchCommit({ quick })) emit(r);
  }
  if (want('consistency')) {
    const { benchConsistency } = await import('./consistency.js');
    await benchConsistency({ quick, onResult: emit });
  }
  if (want('shadow')) {
    const { benchShadow } = await import('./shadow.js');
    for (const r of await benchShadow({ quick })) emit(r);
  }
  if (want('mirror')) {
    const { benchMirror } = await import('./mirror.js');
    for (const r of await benchMirror({ quick })) emit(r);
  }
  if (want('publish')) {
    const { benchPublish } = await import('./publish.js');
    for (const r of await benchPublish({ quick })) emit(r);
  }
  if (want('copy')) {
    const { benchCopy } = await import('./copy.js');
    for (const r of await benchCopy({ quick })) emit(r);
  }
  if (want('edge')) {
    const { benchEdge } = await import('./edge.js');
    for (const r of await benchEdge({ quick })) emit(r);
  }
  if (want('flush')) {
    const { benchFlush } = await import('./flush.js');
    for (const r of await benchFlush({ quick })) emit(r);
  }
  if (want('journal')) {
    const { benchJournal } = await import('./journal.js');
    for (const r of await benchJournal({ quick })) emit(r);
    const { benchJournalDiff } = await import('./journal-diff.js');
    for (const r of await benchJournalDiff({ quick })) emit(r);
    const { benchJournalRestore } = await import('./journal-restore.js');
    for (const r of await benchJournalRestore({ quick })) emit(r);
  }
  if (want('replication')) {
    const { benchReplication } = await import('./replication.js');
    for (const r of await benchReplication({ quick })) emit(r);
    const { benchReplicationLinks } = await import('./replication-links.js');
    for (const r of await benchReplicationLinks({ quick })) emit(r);
    const { benchResync } = await import('./resync.js');
    for (const r of await benchResync({ quick })) emit(r);
  }
  // v86 boots a real guest three times (minutes): only when asked for by name.
  if (only?.has('v86')) {
    const { benchV86 } = await import('./v86.js');
    for (const r of await benchV86({ quick })) emit(r);
  }
  if (only?.has('v86-sync')) {
    const { benchV86Sync } = await import('./v86.js');
    for (const r of await benchV86Sync({ quick })) emit(r);
  }
  return out;
}

/**
 * Import a benchmark module that may not exist yet in this checkout (groups are built by
 * different people): undefined when the module itself is missing; any other error propagates.
 * The specifier is a variable so that TypeScript does not require the file at compile time.
 */
async function optionalModule<T>(specifier: string): Promise<T | undefined> {
  try {
    return (await import(specifier)) as T;
  } catch (e) {
    const code = (e as { code?: string }).code;
    const msg = e instanceof Error ? e.message : String(e);
    if ((code === 'ERR_MODULE_NOT_FOUND' || /Cannot find module|Failed to load url|does the file exist/i.test(msg)) && msg.includes(specifier.replace(/^\.\//, '').replace(/\.js$/, ''))) return undefined;
    throw e;
  }
}

function missing(name: string, peerName: string, target: number, file: string): BenchResult {
  return result(`${name} (skipped)`, 0, 0, 'MB/s', peerName, target, `${file} is not in this build yet`);
}
