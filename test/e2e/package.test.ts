/**
 * stratadisk as an outside app gets it: `npm pack` this package, install the tarball into a fresh
 * Vite app in a temporary directory (test/e2e/package-app), build it for production with Vite's
 * defaults (an iife worker) and with `worker: { format: 'es' }`, serve the build with `vite
 * preview`, and run it in Chromium. The app uses the package only as the README shows: the
 * one-line worker file `import 'stratadisk/worker'`, `stratadisk/client`, `stratadisk/v86`.
 *
 * Installing: the tarball is unpacked into node_modules/stratadisk (what `npm install x.tgz`
 * does with it) and each of its declared `dependencies` is linked from this repo's node_modules,
 * so nothing is downloaded; the app lives outside the repo, so only what the package declares
 * resolves. Vite is this repo's (its JS API, the app's root, no config file).
 *
 * Needs a built dist/ (`npm run build`; `npm test` builds first): the tarball is packed with
 * --ignore-scripts.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, launchBrowser } from './harness.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const APP = join(import.meta.dirname, 'package-app');

/**
 * How long a scenario may take before the test calls it a hang: far above anything legitimate
 * (a few seconds under load), so reaching it means a call never settles.
 */
const HANG_MS = 30_000;

type Outcome = { ok: true; value: unknown } | { ok: false; name: string; code: string | undefined; message: string };

let dir: string;
let app: string;
let browser: Browser | undefined;

/** npm pack (no scripts: dist/ is built already), into `dir`; returns the tarball's path. */
async function pack(): Promise<string> {
  for (const f of ['dist/worker/entry.js', 'dist/worker/client.js', 'dist/v86/index.js', 'build/kernels.wasm']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run \`npm run build\` before this test.`);
  }
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT });
  const [info] = JSON.parse(stdout) as { filename: string }[];
  return join(dir, info!.filename);
}

/** The app's node_modules: the unpacked tarball plus links to the dependencies it declares. */
async function install(tarball: string): Promise<void> {
  const pkgDir = join(app, 'node_modules/stratadisk');
  await mkdir(pkgDir, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', pkgDir, '--strip-components=1']);
  const pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  for (const name of Object.keys(pkg.dependencies ?? {})) {
    const from = join(ROOT, 'node_modules', name);
    if (!existsSync(from)) throw new Error(`dependency ${name} is not installed in this repo: run \`npm ci\`.`);
    await mkdir(join(app, 'node_modules', name, '..'), { recursive: true });
    await symlink(from, join(app, 'node_modules', name), 'dir');
  }
}

interface Served {
  url: string;
  workerChunks: { name: string; bytes: number }[];
  close(): Promise<void>;
}

/** A production build of the app (worker format `format`, or Vite's default), served by `vite preview`. */
async function buildAndServe(format: 'default' | 'es'): Promise<Served> {
  const outDir = join(app, `dist-${format}`);
  const inline = { root: app, configFile: false as const, logLevel: 'warn' as const, ...(format === 'es' ? { worker: { format: 'es' as const } } : {}) };
  await build({ ...inline, build: { outDir, emptyOutDir: true } });
  const assets = join(outDir, 'assets');
  const workerChunks = await Promise.all(
    (await readdir(assets)).filter((f) => f.startsWith('strata.worker')).map(async (name) => ({ name, bytes: (await stat(join(assets, name))).size })),
  );
  const port = await freePort();
  const server: PreviewServer = await preview({
    ...inline,
    build: { outDir },
    preview: {
      host: '127.0.0.1',
      port,
      strictPort: true,
      open: false,
      headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
    },
  });
  return {
    url: `http://127.0.0.1:${port}/`,
    workerChunks,
    close: () => new Promise<void>((ok) => server.httpServer.close(() => ok())),
  };
}

/** Runs scenario `name` in the page; a call that never settles ends as `hang` after HANG_MS. */
async function scenario(page: Page, name: string): Promise<Outcome | 'hang'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<'hang'>((ok) => {
    timer = setTimeout(() => ok('hang'), HANG_MS);
  });
  try {
    return await Promise.race([page.evaluate((n) => window.packageApp.run(n), name), hang]);
  } finally {
    clearTimeout(timer);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stratadisk-package-'));
  app = join(dir, 'app');
  await cp(APP, app, { recursive: true });
  await install(await pack());
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.each(['default', 'es'] as const)('the npm tarball in a Vite app, production build, worker format %s', (format) => {
  let served: Served | undefined;
  let page: Page;

  beforeAll(async () => {
    served = await buildAndServe(format);
    page = await browser!.newPage();
    await page.goto(served.url);
    await page.waitForFunction(() => window.packageApp !== undefined);
  });

  afterAll(async () => {
    await page?.close();
    await served?.close();
  });

  it("keeps the README's one-line worker: its chunk is not empty", () => {
    expect(served!.workerChunks.length).toBe(1);
    expect(served!.workerChunks[0]!.bytes).toBeGreaterThan(1000);
  });

  it('answers client calls: a memory volume and an OPFS volume written, snapshotted and read back', async () => {
    const [memory, opfs] = await Promise.all([scenario(page, 'memory'), scenario(page, 'opfs')]);
    expect(memory).toEqual({ ok: true, value: { live: true, snapshot: true } });
    expect(opfs).toEqual({ ok: true, value: { live: true, snapshot: true, reopened: true } });
  });

  it("the package's worker entry as the worker itself: new Worker(new URL('stratadisk/worker', import.meta.url))", async () => {
    expect(await scenario(page, 'direct')).toEqual({ ok: true, value: { live: true, snapshot: true } });
  });

  it('stratadisk/v86: a V86Disk on a worker volume writes and reads; a machine state file round-trips', async () => {
    expect(await scenario(page, 'v86')).toEqual({ ok: true, value: { onVolume: true, throughDisk: true, state: true } });
  });

  it('a dead worker gives an error, never a hang: 404 script, throws at start, never serves', async () => {
    const [missing, throws, empty] = await Promise.all([scenario(page, 'missing'), scenario(page, 'throws'), scenario(page, 'empty')]);
    expect(missing).toMatchObject({ ok: false, name: 'StrataError', code: 'closed' });
    expect(throws).toMatchObject({ ok: false, name: 'StrataError', code: 'closed' });
    expect((throws as { message: string }).message).toContain('this worker throws at start');
    expect(empty).toMatchObject({ ok: false, name: 'StrataError', code: 'timeout' });
    expect((empty as { message: string }).message).toContain("import 'stratadisk/worker'");
  });

  it('a worker terminated after it answered: calls in flight and later ones reject with closed', async () => {
    const closed = { ok: false, name: 'StrataError', code: 'closed' };
    expect(await scenario(page, 'terminated')).toMatchObject({ ok: true, value: { inFlight: closed, later: closed } });
  });
});
