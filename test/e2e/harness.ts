/**
 * End-to-end harness: builds the demo with vite's JS API, serves it with `vite preview` on a free
 * localhost port (cross-origin isolated by vite.config.ts), and drives Debian's Chromium with
 * Playwright. Nothing is downloaded: the browser is /usr/bin/chromium (see vitest.config.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright';
import { build, preview, type PreviewServer } from 'vite';
import { sourceImports } from '../../vite.config.ts';
import { chromiumLaunch } from '../../vitest.config.ts';

const ROOT = resolve(import.meta.dirname, '../..');
export const TMP = join(ROOT, 'test/.tmp');

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createNetServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

export interface DemoServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Builds the demo into a private directory and serves it; `close` stops the server and removes
 * the build. With `isolated: false` it is served without COOP/COEP (no vite.config.ts), as a
 * page on an ordinary host would be.
 */
export async function serveDemo(options: { isolated?: boolean } = {}): Promise<DemoServer> {
  await mkdir(TMP, { recursive: true });
  const outDir = await mkdtemp(join(TMP, 'e2e-demo-'));
  const isolated = options.isolated ?? true;
  const configFile = isolated ? join(ROOT, 'vite.config.ts') : false;
  // sourceImports: the package's "#..." imports from src/ resolve into src/, as with vite.config.ts
  const plain = isolated ? {} : { root: join(ROOT, 'demo'), base: './', plugins: [sourceImports()], worker: { format: 'es' as const, plugins: () => [sourceImports()] } };
  await build({ ...plain, configFile, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  const port = await freePort();
  const server: PreviewServer = await preview({
    ...plain,
    configFile,
    logLevel: 'warn',
    build: { outDir },
    preview: { host: '127.0.0.1', port, strictPort: true, open: false },
  });
  return {
    url: `http://127.0.0.1:${port}/`,
    async close() {
      await new Promise<void>((ok) => server.httpServer.close(() => ok()));
      await rm(outDir, { recursive: true, force: true });
    },
  };
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ ...chromiumLaunch, headless: true });
}

/** A browser with a profile directory of its own, so storage survives closing and relaunching it. */
export async function launchPersistent(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(dir, { ...chromiumLaunch, headless: true, viewport: { width: 1280, height: 1000 } });
}

export async function profileDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'stratadisk-e2e-profile-'));
}

/** Page errors and console errors seen so far, for assertions and for failure messages. */
export const pageProblems = new WeakMap<Page, string[]>();

/** Opens the demo and waits until its worker answered. */
export async function openDemo(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage();
  const problems: string[] = [];
  pageProblems.set(page, problems);
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Failed loads are reported with their URL by the response handler below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  await page.setViewportSize({ width: 1280, height: 1000 });
  await page.goto(url);
  await page.waitForFunction(() => window.__strata !== undefined, undefined, { timeout: 30_000 });
  await page.evaluate(() => window.__strata!.ready);
  await page.locator('#badge-worker', { hasText: 'worker ready' }).waitFor({ timeout: 30_000 });
  return page;
}

/** Waits until no demo action is running. */
export async function idle(page: Page, timeout = 60_000): Promise<void> {
  await page.waitForFunction(() => document.body.dataset.busy === 'no', undefined, { timeout });
}

/** Clicks a button and waits for the action it starts to finish; returns the status line. */
export async function act(page: Page, selector: string): Promise<Status> {
  await page.locator(selector).click();
  // The action marks the page busy synchronously on click; wait until it is done.
  await idle(page);
  return status(page);
}

export interface Status {
  kind: string;
  code: string;
  text: string;
}

export async function status(page: Page): Promise<Status> {
  const el = page.locator('#status');
  return {
    kind: (await el.getAttribute('data-kind')) ?? '',
    code: (await el.getAttribute('data-code')) ?? '',
    text: (await el.textContent()) ?? '',
  };
}

/** Selects backend and name (and optionally size/block size) in the volume card. */
export async function chooseVolume(page: Page, backend: 'opfs' | 'idb' | 'memory', name: string, size?: string, blockSize?: number): Promise<void> {
  await page.selectOption('#backend', backend);
  await page.fill('#vol-name', name);
  if (size !== undefined) await page.fill('#vol-size', size);
  if (blockSize !== undefined) await page.selectOption('#vol-block', String(blockSize));
}

/** Distinct colours in the block-map canvas, read from its pixels in the page. */
export async function canvasColours(page: Page): Promise<number> {
  return page.evaluate(() => {
    const canvas = document.getElementById('blockmap') as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set<number>();
    for (let i = 0; i < data.length; i += 4) seen.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
    return seen.size;
  });
}

/** The v86 demo (vm.html) in the first page of `context`, its hook ready; page errors are collected. */
export async function openVmPage(context: BrowserContext, url: string): Promise<Page> {
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  pageProblems.set(page, problems);
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(`${url}vm.html`);
  await vmReady(page);
  return page;
}

/** Reloads the v86 demo, selects the disk (backend, VM name) and attaches it without starting the machine. */
export async function reloadVm(page: Page, backend: 'opfs' | 'idb' | 'memory', name: string): Promise<void> {
  await page.reload();
  await vmReady(page);
  await page.selectOption('#backend', backend);
  await page.fill('#vm-name', name);
  await page.evaluate(() => window.__vm!.attach());
}

async function vmReady(page: Page): Promise<void> {
  await page.waitForFunction(() => window.__vm !== undefined, undefined, { timeout: 30_000 });
  await page.evaluate(() => window.__vm!.ready);
}

/** Why the tests that make an ext2 image cannot run here, or undefined when they can. */
export function mke2fsMissing(): string | undefined {
  try {
    execFileSync('mke2fs', ['-V'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'mke2fs (e2fsprogs) is not installed';
  }
}
