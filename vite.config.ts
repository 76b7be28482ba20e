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
  plugins: [vmGuest()],
  worker: { format: 'es' },
});
