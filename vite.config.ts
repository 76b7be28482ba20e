import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defineConfig, type Plugin } from 'vite';

/**
 * The v86 demo's guest (built by .ci/build-guest.sh into build/guest/, never committed) served
 * at ./vm-guest/ in dev and copied there by a build; absent files give 404 and the page says how
 * to build them.
 */
function vmGuest(): Plugin {
  const dir = resolve(import.meta.dirname, 'build/guest');
  const files = () => (existsSync(dir) ? readdirSync(dir) : []);
  return {
    name: 'stratadisk-vm-guest',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const m = /\/vm-guest\/([A-Za-z0-9._-]+)$/.exec((req.url ?? '').split('?')[0]!);
        if (!m || !files().includes(m[1]!)) return next();
        res.setHeader('Content-Type', 'application/octet-stream');
        res.end(readFileSync(join(dir, m[1]!)));
      });
    },
    generateBundle() {
      for (const f of files()) this.emitFile({ type: 'asset', fileName: `vm-guest/${f}`, source: readFileSync(join(dir, f)) });
    },
  };
}

/**
 * Cross-origin isolation (COOP + COEP) makes SharedArrayBuffer available to the page and its
 * workers; vitest browser mode applies `server.headers` too, so tests run isolated.
 */
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/**
 * The package's own "#..." imports (package.json "imports": the kernel loader, the worker's
 * platform part) point into dist/ for Node and consumers, and into src/ under the
 * `stratadisk-source` condition (tsc: tsconfig customConditions). Here a "#..." import from a
 * file in src/ takes that branch, and within it the environment's own conditions pick the
 * platform (`browser` for pages and workers, `node` for SSR: vitest's node project), so the demo
 * and the tests run from source. A plugin rather than `resolve.conditions`: vitest hands the SSR
 * conditions to Node (--conditions) for the processes and worker threads it starts, where a
 * built dist/ must resolve into dist/, never into TypeScript sources.
 */
const SOURCE_CONDITION = 'stratadisk-source';
const SRC = resolve(import.meta.dirname, 'src') + '/';

type ImportTarget = string | null | ImportTarget[] | { [condition: string]: ImportTarget };

/** The first target a condition tree gives under `conditions` (Node's algorithm: keys in order, `default` always matches). */
function pickTarget(t: ImportTarget, conditions: ReadonlySet<string>): string | undefined {
  if (t === null) return undefined;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) return t.map((x) => pickTarget(x, conditions)).find((x) => x !== undefined);
  for (const [key, value] of Object.entries(t)) {
    if (key !== 'default' && !conditions.has(key)) continue;
    const picked = pickTarget(value, conditions);
    if (picked !== undefined) return picked;
  }
  return undefined;
}

export function sourceImports(): Plugin {
  const imports = (JSON.parse(readFileSync(resolve(import.meta.dirname, 'package.json'), 'utf8')) as { imports?: Record<string, ImportTarget> }).imports ?? {};
  return {
    name: 'stratadisk-source-imports',
    enforce: 'pre',
    resolveId(source, importer) {
      if (!source.startsWith('#') || importer === undefined || !importer.startsWith(SRC)) return null;
      const conditions = new Set([SOURCE_CONDITION, ...this.environment.config.resolve.conditions]);
      const target = imports[source] === undefined ? undefined : pickTarget(imports[source]!, conditions);
      if (target === undefined || !target.startsWith('./src/')) {
        throw new Error(`${importer} imports ${source}, which package.json "imports" does not map into src/ under the ${SOURCE_CONDITION} condition`);
      }
      return resolve(import.meta.dirname, target);
    },
  };
}

export default defineConfig({
  root: 'demo',
  base: './',
  server: { headers: isolation },
  preview: { headers: isolation },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Two pages: the volume demo and the v86 VM demo.
    rolldownOptions: { input: { main: resolve(import.meta.dirname, 'demo/index.html'), vm: resolve(import.meta.dirname, 'demo/vm.html') } },
  },
  plugins: [sourceImports(), vmGuest()],
  // config.plugins reach workers only in dev; a build bundles workers with these
  worker: { format: 'es', plugins: () => [sourceImports()] },
});
