/**
 * Platform choices are the package's, made by resolver conditions (package.json "imports"),
 * never by sniffing at run time: the kernel loader (`#kernel-loader`) and the worker's platform
 * part (`#worker-serve`). Each entry has a dist/ branch (Node, consumers' bundlers) and a
 * `stratadisk-source` branch (tsc, Vite, vitest from source) that must say the same thing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '../../..');
type Target = string | null | Target[] | { [condition: string]: Target };
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { imports?: Record<string, Target>; sideEffects?: string[] };
const imports = pkg.imports ?? {};
const SOURCE = 'stratadisk-source';

/** [condition path, file] for every leaf of a target */
function leaves(t: Target, path: string[] = []): [string, string][] {
  if (t === null) return [];
  if (typeof t === 'string') return [[path.join('.'), t]];
  if (Array.isArray(t)) return t.flatMap((x) => leaves(x, path));
  return Object.entries(t).flatMap(([k, v]) => leaves(v, [...path, k]));
}

/** Where Node resolves `spec` from inside the package, with extra `conditions` (-C). */
function nodeResolves(spec: string, conditions: string[] = []): string {
  const out = execFileSync(process.execPath, [...conditions.flatMap((c) => ['-C', c]), '--input-type=module', '-e', `console.log(import.meta.resolve(${JSON.stringify(spec)}))`], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  return out.trim().replace(`file://${ROOT}/`, '');
}

describe('package.json "imports"', () => {
  it('maps the kernel loader and the worker platform part', () => {
    expect(Object.keys(imports).sort()).toEqual(['#kernel-loader', '#worker-serve']);
  });

  it.each(Object.keys(imports))('%s: the source branch names the sources of the dist branch, condition for condition', (spec) => {
    const { [SOURCE]: source, ...built } = imports[spec] as Record<string, Target>;
    const fromSource = leaves(source!);
    const fromDist = leaves(built).map(([c, f]) => [c, f.replace(/^\.\/dist\/(.+)\.js$/, './src/$1.ts')]);
    expect(fromSource.length).toBeGreaterThan(1);
    expect(fromSource).toEqual(fromDist);
    for (const [, f] of fromSource) expect(existsSync(join(ROOT, f)), f).toBe(true);
  });

  it('Node picks the node file by default and the browser or workerd file under those conditions', () => {
    expect(nodeResolves('#kernel-loader')).toBe('dist/wasm/compile-node.js');
    expect(nodeResolves('#kernel-loader', ['browser'])).toBe('dist/wasm/compile-fetch.js');
    expect(nodeResolves('#kernel-loader', ['workerd'])).toBe('dist/wasm/compile-workerd.js');
    expect(nodeResolves('#worker-serve')).toBe('dist/worker/serve-node.js');
    expect(nodeResolves('#worker-serve', ['browser'])).toBe('dist/worker/serve-browser.js');
    // the sources only under the package's own condition
    expect(nodeResolves('#kernel-loader', [SOURCE])).toBe('src/wasm/compile-node.ts');
  });

  it('lists every worker platform file under sideEffects, so a bundler keeps the import made for its effect', () => {
    for (const [, f] of leaves(imports['#worker-serve']!)) expect(pkg.sideEffects).toContain(f);
  });

  it('leaves no run-time platform sniffing in the kernel loader and the worker entry', () => {
    const files = ['src/wasm/kernels.ts', 'src/wasm/compile-node.ts', 'src/wasm/compile-fetch.ts', 'src/wasm/compile-workerd.ts', 'src/worker/entry.ts', 'src/worker/entry-node.ts', 'src/worker/serve-node.ts', 'src/worker/serve-browser.ts'];
    for (const f of files) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      expect(text, f).not.toMatch(/typeof process|process\.versions|protocol === 'file:'|@vite-ignore/);
    }
  });
});
