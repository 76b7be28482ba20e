/**
 * Consistency groups across two real Chromium pages of one origin (BroadcastChannel between
 * them, a Web Lock electing the host). The host page keeps the two ledger volumes in OPFS in its
 * dedicated worker; both pages run ledger writers and ask for snapshots; every snapshot must
 * satisfy the invariant, and the control run without holding writes must find violations.
 * Then the host page is closed in the middle of a freeze: the other page thaws without waiting
 * for the freeze limit, takes over as host, reopens the volumes and finds every snapshot intact.
 *
 * The page is test/e2e/consistency-page/, built with vite and served by `vite preview`.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, launchBrowser, TMP } from './harness.js';

const ROOT = resolve(import.meta.dirname, 'consistency-page');
let server: PreviewServer;
let outDir: string;
let url: string;
let browser: Browser;

beforeAll(async () => {
  await mkdir(TMP, { recursive: true });
  outDir = await mkdtemp(join(TMP, 'e2e-cg-'));
  const config = { root: ROOT, base: './', configFile: false as const, logLevel: 'warn' as const, worker: { format: 'es' as const } };
  await build({ ...config, build: { outDir, emptyOutDir: true, target: 'es2022' } });
  const port = await freePort();
  server = await preview({ ...config, build: { outDir }, preview: { host: '127.0.0.1', port, strictPort: true, open: false } });
  url = `http://127.0.0.1:${port}/`;
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  if (server) await new Promise<void>((ok) => server.httpServer.close(() => ok()));
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

const problems = new WeakMap<Page, string[]>();

async function openPage(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  const seen: string[] = [];
  problems.set(page, seen);
  page.on('pageerror', (e) => seen.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(30_000);
  await page.goto(url);
  await page.waitForFunction(() => (window as unknown as { __cg?: { ready: boolean } }).__cg?.ready === true);
  return page;
}

type Cg = Record<string, (...args: never[]) => unknown>;
const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> =>
  page.evaluate(([f, a]) => ((window as unknown as { __cg: Cg }).__cg[f as string] as (...x: unknown[]) => unknown)(...(a as unknown[])), [fn, args] as const) as Promise<T>;

interface RunResult {
  transfers: number[];
  requested: string[];
  failures: string[];
  seen: string[];
}
interface Verify {
  snapshots: string[];
  sameOnB: boolean;
  violations: string[];
  live: string[];
}

async function ledgerRun(context: BrowserContext, group: string, hold: boolean): Promise<{ a: Page; b: Page; runs: RunResult[]; check: Verify }> {
  const a = await openPage(context);
  await call(a, 'join', group, 'page-A', hold);
  expect(await call<{ isHost: boolean }>(a, 'status')).toMatchObject({ isHost: true });
  const b = await openPage(context);
  await call(b, 'join', group, 'page-B', hold);
  expect(await call<{ isHost: boolean }>(b, 'status')).toMatchObject({ isHost: false });
  await expect.poll(async () => (await call<{ participants: string[] }>(a, 'status')).participants.sort()).toEqual(['page-A', 'page-B']);
  const runs = await Promise.all([call<RunResult>(a, 'run', [0, 1], 2500, 150), call<RunResult>(b, 'run', [2, 3], 2500, 150)]);
  const check = await call<Verify>(a, 'verify', 4);
  return { a, b, runs, check };
}

describe('consistency group across two Chromium pages', () => {
  let context: BrowserContext;
  afterAll(async () => {
    await context?.close();
  });

  it('every snapshot taken while both pages write satisfies the ledger invariant', async () => {
    context = await browser.newContext();
    const { a, b, runs, check } = await ledgerRun(context, 'ledger', true);
    expect(check.violations).toEqual([]);
    expect(check.live).toEqual([]);
    expect(check.sameOnB).toBe(true);
    for (const r of runs) {
      expect(Math.min(...r.transfers)).toBeGreaterThan(0);
      expect(r.failures).toEqual([]);
      expect(r.requested.length).toBeGreaterThan(0);
      for (const id of r.requested) expect(check.snapshots).toContain(id);
    }
    // Each page heard of every snapshot (post-snapshot), including those the other page started.
    for (const page of [a, b]) await expect.poll(() => call<string[]>(page, 'seen')).toEqual(check.snapshots);
    expect(problems.get(a)).toEqual([]);
    expect(problems.get(b)).toEqual([]);
    await a.close();
    await b.close();
  });

  it('control: without holding writes during the freeze, snapshots break the invariant', async () => {
    const { a, b, check } = await ledgerRun(context, 'ledger-control', false);
    expect(check.snapshots.length).toBeGreaterThan(3);
    expect(check.violations.length).toBeGreaterThan(0);
    await a.close();
    await b.close();
  });

  it('the host page dies mid-freeze: the other page thaws, takes over, and the snapshots are intact', async () => {
    const group = 'takeover';
    const a = await openPage(context);
    await call(a, 'join', group, 'page-A', true);
    const b = await openPage(context);
    await call(b, 'join', group, 'page-B', true);
    await call(b, 'run', [2, 3], 500, 100);
    const before = await call<Verify>(a, 'verify', 4);
    expect(before.violations).toEqual([]);
    // The host's next snapshot takes 30 s, longer than anyone will wait for it here.
    await call(a, 'stall', 30_000);
    await call(b, 'requestInBackground');
    await expect.poll(async () => (await call<{ frozen: boolean }>(b, 'status')).frozen).toBe(true);
    const t0 = Date.now();
    await a.close(); // the coordinator dies with the members frozen
    await expect.poll(async () => (await call<{ gateFrozen: boolean }>(b, 'status')).gateFrozen, { timeout: 15_000 }).toBe(false);
    const thawedAfter = Date.now() - t0;
    expect(thawedAfter).toBeLessThan(60_000);
    expect(await call<string>(b, 'lastRequest')).toBe('error closed');
    // B was next in line for the lock: it hosts now, with the volumes reopened from OPFS.
    await expect.poll(async () => (await call<{ isHost: boolean }>(b, 'status')).isHost, { timeout: 15_000 }).toBe(true);
    await call(b, 'rejoin', group, 'page-B', true);
    const after = await call<Verify>(b, 'verify', 4);
    expect(after.snapshots).toEqual(before.snapshots);
    expect(after.violations).toEqual([]);
    const more = await call<RunResult>(b, 'run', [2], 400, 100);
    expect(more.failures).toEqual([]);
    expect(more.requested.length).toBeGreaterThan(0);
    expect((await call<Verify>(b, 'verify', 4)).violations).toEqual([]);
    expect(problems.get(b)).toEqual([]);
    console.info(`host page closed mid-freeze: the other page thawed after ${thawedAfter} ms`);
  });
});
