/**
 * The shape of the house (DESIGN.md): folders are layers, and an import arrow only points down.
 * A lower room never imports a higher one (the shadow code never imports the jobs that use it),
 * and no module imports itself through others (a cycle makes load order matter and hides which
 * side owns what). Type-only imports count too: they are arrows a reader follows, and so are
 * imports for effect (`import './x.js'`). A package "#..." import (package.json "imports", chosen
 * by conditions) is an arrow to every file it can resolve to under any condition.
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
  /** the write log: above volume (it observes writes), below the CLI */
  journal: 5,
  /** replication sessions and their transports: above volume, consistency and jobs */
  replication: 6,
  interop: 6,
  /** resync by segment checksums: keeps checksums per volume (a write observer), sides over a consistency Link */
  resync: 6,
  edge: 6,
  v86: 6,
  /** the engine in a worker: runs replication sessions for the page */
  worker: 7,
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
const SPEC = `['"]((?:\\.{1,2}\\/|#)[^'"]+)['"]`;
const IMPORT = new RegExp(`(?:^|[\\s;])(?:import|export)\\s[^'"\`;]*?from\\s*${SPEC}|import\\(\\s*(?:\\/\\*[^*]*\\*\\/\\s*)?${SPEC}|(?:^|[\\s;])import\\s*${SPEC}`, 'g');

type Target = string | null | Target[] | { [condition: string]: Target };
const PACKAGE_IMPORTS = (JSON.parse(readFileSync(join(SRC, '../package.json'), 'utf8')) as { imports?: Record<string, Target> }).imports ?? {};

/** Every file a package.json "imports" target can name, under any condition. */
function leaves(t: Target): string[] {
  if (t === null) return [];
  if (typeof t === 'string') return [t];
  if (Array.isArray(t)) return t.flatMap(leaves);
  return Object.values(t).flatMap(leaves);
}

/**
 * The src files a "#..." specifier can resolve to (./src/x.ts, or ./dist/x.js naming src/x.ts);
 * undefined when package.json "imports" has no entry for it. Subpath patterns ("#a/*") too.
 */
function resolvePackageImport(spec: string, imports: Record<string, Target> = PACKAGE_IMPORTS): string[] | undefined {
  let target: Target | undefined = imports[spec];
  let star: string | undefined;
  if (target === undefined) {
    for (const [key, t] of Object.entries(imports)) {
      const i = key.indexOf('*');
      if (i >= 0 && spec.startsWith(key.slice(0, i)) && spec.endsWith(key.slice(i + 1)) && spec.length >= key.length - 1) {
        target = t;
        star = spec.slice(i, spec.length - (key.length - i - 1));
        break;
      }
    }
  }
  if (target === undefined) return undefined;
  const out = new Set<string>();
  for (const leaf of leaves(target)) {
    const path = star === undefined ? leaf : leaf.split('*').join(star);
    const m = /^\.\/(?:src\/(.+\.ts)|dist\/(.+)\.js)$/.exec(path);
    if (m) out.add(m[1] ?? `${m[2]}.ts`);
  }
  return [...out];
}

/** file -> the src files it imports (.js names the .ts source; "#..." through package.json "imports") */
const edges = new Map<string, string[]>();
/** "#..." specifiers that package.json "imports" does not map */
const unmapped: string[] = [];
for (const f of files) {
  const text = readFileSync(join(SRC, f), 'utf8');
  const out = new Set<string>();
  for (const m of text.matchAll(IMPORT)) {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    if (spec.startsWith('#')) {
      const targets = resolvePackageImport(spec);
      if (targets === undefined) unmapped.push(`${f}: ${spec}`);
      for (const t of targets ?? []) if (files.includes(t)) out.add(t);
      continue;
    }
    const target = normalize(join(dirname(f), spec)).split('\\').join('/').replace(/\.js$/, '.ts');
    if (files.includes(target)) out.add(target);
  }
  edges.set(f, [...out]);
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
    // package "#..." imports: an arrow to each file any condition can pick
    expect(edges.get('wasm/kernels.ts')).toEqual(expect.arrayContaining(['wasm/compile-node.ts', 'wasm/compile-fetch.ts', 'wasm/compile-workerd.ts']));
    expect(edges.get('worker/entry.ts')).toEqual(expect.arrayContaining(['worker/serve-node.ts', 'worker/serve-browser.ts']));
    // imports for effect
    expect(edges.get('worker/entry-node.ts')).toContain('worker/serve-node.ts');
    expect(unmapped).toEqual([]);
    expect([...edges.values()].reduce((n, t) => n + t.length, 0)).toBeGreaterThan(500);
  });
});
