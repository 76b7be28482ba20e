/**
 * The shape of the house (DESIGN.md): folders are layers, and an import arrow only points down.
 * A lower room never imports a higher one (the shadow code never imports the jobs that use it),
 * and no module imports itself through others (a cycle makes load order matter and hides which
 * side owns what). Type-only imports count too: they are arrows a reader follows.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(__dirname, '../../../src');

/** Each folder of src/ and its layer: imports go to strictly lower layers or stay in the folder. */
const LAYER: Record<string, number> = {
  util: 0,
  wasm: 0,
  store: 1,
  format: 2,
  volume: 3,
  shadow: 4,
  jobs: 5,
  consistency: 5,
  transfer: 5,
  interop: 6,
  edge: 6,
  v86: 6,
  worker: 6,
  bench: 7,
  cli: 8,
};
/** Top-level files: errors.ts is below everything; index.ts is the entry point above it all, node.ts adds Node's parts to it. */
const TOP: Record<string, number> = { 'errors.ts': -1, 'index.ts': 9, 'node.ts': 10 };

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

function layerOf(rel: string): { name: string; layer: number } {
  const [first, ...rest] = rel.split('/');
  if (rest.length === 0) return { name: first!, layer: TOP[first!] ?? 9 };
  const layer = LAYER[first!];
  if (layer === undefined) throw new Error(`src/${first}/ has no layer in test/node/architecture/imports.test.ts: give it one`);
  return { name: first!, layer };
}

const files = sources(SRC).map((f) => relative(SRC, f).split('\\').join('/'));
const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*(?:\/\*[^*]*\*\/\s*)?['"](\.{1,2}\/[^'"]+)['"]/g;

/** file -> the src files it imports (relative specifiers only; .js names the .ts source) */
const edges = new Map<string, string[]>();
for (const f of files) {
  const text = readFileSync(join(SRC, f), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = (m[1] ?? m[2])!;
    const target = normalize(join(dirname(f), spec)).split('\\').join('/').replace(/\.js$/, '.ts');
    if (files.includes(target)) out.push(target);
  }
  edges.set(f, out);
}

describe('import arrows', () => {
  it('point only down the layers of src/', () => {
    const up: string[] = [];
    for (const [f, targets] of edges) {
      const from = layerOf(f);
      for (const t of targets) {
        const to = layerOf(t);
        if (to.name !== from.name && to.layer >= from.layer) up.push(`${f} -> ${t} (${from.name} is layer ${from.layer}, ${to.name} is ${to.layer})`);
      }
    }
    expect(up).toEqual([]);
  });

  it('form no cycle between modules', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const path: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      path.push(f);
      for (const t of edges.get(f) ?? []) {
        if (state.get(t) === 'open') cycles.push([...path.slice(path.indexOf(t)), t].join(' -> '));
        else if (!state.has(t)) visit(t);
      }
      path.pop();
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it('sees the imports it judges (the scanner is not blind)', () => {
    expect(edges.get('cli/main.ts')).toContain('cli/commands/index.ts');
    expect(edges.get('jobs/shadow-export.ts')).toContain('jobs/job.ts');
    expect([...edges.values()].reduce((n, t) => n + t.length, 0)).toBeGreaterThan(500);
  });
});
