/**
 * workerd (through miniflare) for the edge benchmark and tests: bundles a worker entry with
 * rolldown (with the `workerd` export condition, as wrangler does), hands build/kernels.wasm to
 * it as a CompiledWasm module (the import of src/edge/workerd.ts), and starts workers that share
 * one R2 bucket. Needs the dev dependencies (miniflare, and rolldown through vite).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface WorkerSpec {
  name: string;
  /** the entry module (.ts or .js) */
  entry: string;
  /** plain-text bindings ([vars]) */
  vars?: Record<string, string>;
  /** the name the shared bucket is bound as (default BUCKET) */
  bucketBinding?: string;
}

export interface Workerd {
  /** one worker's fetch (the first worker also answers dispatchFetch) */
  fetch(worker: string, url: string, init?: RequestInit): Promise<Response>;
  /** the shared R2 bucket (the first worker's binding) */
  bucket(): Promise<R2BucketNode>;
  dispose(): Promise<void>;
}

/** What Node gets from miniflare's getR2Bucket (structural; used by R2ObjectStore too). */
export interface R2BucketNode {
  get(key: string, options?: { range?: { offset: number; length: number } }): Promise<{ key: string; size: number; uploaded: Date; arrayBuffer(): Promise<ArrayBuffer> } | null>;
  head(key: string): Promise<{ key: string; size: number; uploaded: Date } | null>;
  put(key: string, value: ArrayBuffer | ArrayBufferView, options?: { onlyIf?: { etagDoesNotMatch?: string } }): Promise<{ key: string; size: number; uploaded: Date } | null>;
  list(options?: { prefix?: string; cursor?: string; limit?: number }): Promise<{ objects: { key: string; size: number; uploaded: Date }[]; truncated: boolean; cursor?: string }>;
  delete(keys: string | string[]): Promise<void>;
}

const KERNELS = fileURLToPath(new URL('../../build/kernels.wasm', import.meta.url));

/** One ES module holding the entry and everything it imports; `*.wasm` stays an import of ./kernels.wasm. */
export async function bundleWorker(entry: string): Promise<string> {
  const rolldownName = 'rolldown';
  const { rolldown } = (await import(rolldownName)) as typeof import('rolldown');
  const bundle = await rolldown({
    input: entry,
    platform: 'browser',
    logLevel: 'silent',
    // A .ts entry runs from the sources: the package's own "#..." imports then resolve into src/
    // too (the `stratadisk-source` condition of package.json "imports"), not into dist/.
    resolve: { conditionNames: [...(entry.endsWith('.ts') ? ['stratadisk-source'] : []), 'workerd', 'worker', 'browser', 'import', 'default'], extensionAlias: { '.js': ['.ts', '.js'] } },
    plugins: [
      {
        name: 'compiled-wasm',
        resolveId(source: string) {
          return source.endsWith('.wasm') ? { id: './kernels.wasm', external: true } : null;
        },
      },
      {
        // hash-wasm compiles WebAssembly from bytes at run time, which workerd refuses: nothing
        // that runs in the worker may import it (chunk names use our BLAKE3 kernel)
        name: 'no-hash-wasm-in-workerd',
        resolveId(source: string, importer?: string) {
          if (source === 'hash-wasm') throw new Error(`${importer ?? 'the worker'} imports hash-wasm, which cannot run in workerd`);
          return null;
        },
      },
    ],
  });
  try {
    const { output } = await bundle.generate({ format: 'esm', codeSplitting: false });
    return output[0].code;
  } finally {
    await bundle.close();
  }
}

/** The entry next to this module: `name`.js when built, `name`.ts when run from the sources. */
export function siblingEntry(base: string, name: string): string {
  const js = fileURLToPath(new URL(`${name}.js`, base));
  return existsSync(js) ? js : fileURLToPath(new URL(`${name}.ts`, base));
}

export async function startWorkerd(workers: readonly WorkerSpec[], options: { cache?: boolean } = {}): Promise<Workerd> {
  const miniflareName = 'miniflare';
  const { Miniflare } = (await import(miniflareName)) as typeof import('miniflare');
  const wasm = readFileSync(KERNELS);
  const specs = [];
  for (const w of workers) {
    specs.push({
      name: w.name,
      modules: [
        { type: 'ESModule' as const, path: 'worker.js', contents: await bundleWorker(w.entry) },
        { type: 'CompiledWasm' as const, path: 'kernels.wasm', contents: wasm },
      ],
      compatibilityDate: '2026-04-01',
      r2Buckets: { [w.bucketBinding ?? 'BUCKET']: 'images' },
      bindings: w.vars ?? {},
      cache: options.cache ?? true,
    });
  }
  const mf = new Miniflare({ workers: specs });
  await mf.ready;
  return {
    async fetch(worker, url, init) {
      const f = (await mf.getWorker(worker)) as unknown as { fetch(url: string, init?: unknown): Promise<Response> };
      return f.fetch(url, init);
    },
    async bucket() {
      return (await mf.getR2Bucket(workers[0]!.bucketBinding ?? 'BUCKET', workers[0]!.name)) as unknown as R2BucketNode;
    },
    dispose: () => mf.dispose(),
  };
}
