/**
 * Replication over real transports from real Chromium pages (issue 17, "must show"):
 * - two pages of one origin, each with an OPFS volume in its dedicated worker: page A replicates
 *   to page B over a BroadcastChannel, synchronously. Page B is closed in the middle of A's write
 *   load: A freezes and its writes go on, out of sync. B is opened again and A resumes: the two
 *   volumes are equal, and the resync moved exactly the out-of-sync bytes A's status reported.
 * - a page replicating asynchronously to a Node replica server over WebSocket (a separate
 *   process: test/e2e/replication-server.mjs, from dist/). The server is killed with SIGKILL in
 *   the middle of the load, started again on the same directory and port; A resumes; the two
 *   volumes are equal.
 *
 * Nothing waits on a clock for the result: the test waits for states (frozen, replicating, lag
 * 0), never for a time; the liveness checks of the links are what notices a side gone.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceImports } from '../../vite.config.ts';
import { freePort, launchBrowser, TMP } from './harness.js';

const ROOT = resolve(import.meta.dirname, 'replication-page');
const SERVER = resolve(import.meta.dirname, 'replication-server.mjs');
const DIST = resolve(import.meta.dirname, '../../dist/replication/links/node.js');
const BS = 4096;
const SIZE = 1024 * BS; // 4 MiB
/** blocks the load writes into (the first copy and the resync move only those) */
const LOAD_BLOCKS = 512;
/** liveness of the links: a side gone is noticed after 3 s of silence */
const TIMING = { heartbeatMs: 250, deadAfterMs: 3000, connectTimeoutMs: 20_000 };

let server: PreviewServer;
let outDir: string;
let url: string;
let origin: string;
let browser: Browser;

beforeAll(async () => {
  await mkdir(TMP, { recursive: true });
  outDir = await mkdtemp(join(TMP, 'e2e-rep-'));
  // sourceImports: the worker's "#worker-serve" resolves into src/ (as the sources here), not into a built dist/
  const config = { root: ROOT, base: './', configFile: false as const, logLevel: 'warn' as const, plugins: [sourceImports()], worker: { format: 'es' as const, plugins: () => [sourceImports()] } };
  await build({ ...config, build: { outDir, emptyOutDir: true, target: 'es2022' } });
  const port = await freePort();
  server = await preview({ ...config, build: { outDir }, preview: { host: '127.0.0.1', port, strictPort: true, open: false } });
  origin = `http://127.0.0.1:${port}`;
  url = `${origin}/`;
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  if (server) await new Promise<void>((ok) => server.httpServer.close(() => ok()));
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

const problems = new WeakMap<Page, string[]>();

async function openPage(context: BrowserContext, path: string, size = SIZE): Promise<Page> {
  const page = await context.newPage();
  const seen: string[] = [];
  problems.set(page, seen);
  page.on('pageerror', (e) => seen.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(60_000);
  await page.goto(url);
  await page.waitForFunction(() => (window as unknown as { __rep?: { ready: boolean } }).__rep?.ready === true);
  await call(page, 'open', path, size, BS);
  return page;
}

type Rep = Record<string, (...args: never[]) => unknown>;
const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> =>
  page.evaluate(([f, a]) => ((window as unknown as { __rep: Rep }).__rep[f as string] as (...x: unknown[]) => unknown)(...(a as unknown[])), [fn, args] as const) as Promise<T>;

interface Session {
  name: string;
  state: string;
  lagWrites: number;
  outOfSyncBytes: number;
  sentBytes: number;
}
interface Status {
  role: string;
  frozen: boolean;
  generation: string;
  sessions: Session[];
  serving: { connected: boolean } | null;
}

describe('the browser build of a page that replicates', () => {
  it('has no Node-only import in the page or its worker (the ws package stays out too)', async () => {
    const files = (await readdir(join(outDir, 'assets'))).filter((f) => f.endsWith('.js'));
    expect(files.some((f) => f.startsWith('entry'))).toBe(true); // the worker's chunk
    for (const f of files) {
      const text = await readFile(join(outDir, 'assets', f), 'utf8');
      expect(text, f).not.toMatch(/(?:from|import)\s*\(?\s*["'](?:node:[a-z_/]+|ws|fs|net|tls|http|https)["']/);
    }
  });
});

const session = async (page: Page): Promise<Session> => (await call<Status>(page, 'status')).sessions[0]!;

describe('replication between two Chromium pages over a BroadcastChannel (sync)', () => {
  let context: BrowserContext;
  afterAll(async () => {
    await context?.close();
  });

  it('replicates, freezes when the replica page closes mid-load, resumes moving only the out-of-sync bytes', async () => {
    context = await browser.newContext();
    const a = await openPage(context, 'rep/a');
    // something before the first copy: it moves allocated blocks only
    await call(a, 'startLoad', 1, 64);
    await expect.poll(() => call<number>(a, 'written')).toBeGreaterThanOrEqual(40);
    await call(a, 'stopLoad');
    let b = await openPage(context, 'rep/b');
    await call(b, 'serve', { broadcast: 'rep-ab', ...TIMING });
    await call(a, 'replicate', { broadcast: 'rep-ab', ...TIMING }, { name: 'ab', mode: 'sync' });
    await call(a, 'synced');
    const first = await session(a);
    expect(first.state).toBe('replicating');
    expect(first.sentBytes).toBeLessThanOrEqual(64 * BS);
    expect(await call<string>(b, 'digest')).toBe(await call<string>(a, 'digest'));

    // a write load over blocks 0..511; page B goes in the middle of it. Once A sees itself
    // frozen, its load writes into blocks 900..963 instead (policy run: the writes go on)
    await call(a, 'startLoad', 2, LOAD_BLOCKS, 0, { first: 900, blocks: 64 });
    const w0 = await call<number>(a, 'written');
    await expect.poll(() => call<number>(a, 'written')).toBeGreaterThanOrEqual(w0 + 50);
    await b.close();
    await expect.poll(async () => (await call<Status>(a, 'status')).frozen, { timeout: 60_000 }).toBe(true);
    await expect.poll(() => call<number>(a, 'writtenFrozen'), { timeout: 60_000 }).toBeGreaterThanOrEqual(100);
    const { errors } = await call<{ errors: string[] }>(a, 'stopLoad');
    expect(errors).toEqual([]);
    const frozen = await session(a);
    expect(frozen.state).toBe('frozen');
    // out of sync: the frozen region's blocks written, plus at most the one write in flight at the freeze
    const allocated = (await call<{ length: number; present: boolean }[]>(a, 'map')).filter((e) => e.present).reduce((n, e) => n + e.length, 0);
    expect(frozen.outOfSyncBytes).toBeGreaterThan(0);
    expect(frozen.outOfSyncBytes).toBeLessThanOrEqual(65 * BS);
    expect(frozen.outOfSyncBytes % BS).toBe(0);
    // (a full copy would move every allocated block: the first load alone wrote more than 16 others)
    expect(allocated).toBeGreaterThan(frozen.outOfSyncBytes + 16 * BS);
    expect((await call<{ type: string }[]>(a, 'events')).some((e) => e.type === 'frozen')).toBe(true);

    // page B again, on the same OPFS volume; A resumes
    b = await openPage(context, 'rep/b');
    await call(b, 'serve', { broadcast: 'rep-ab', ...TIMING });
    await call(a, 'resume');
    await call(a, 'synced');
    const after = await session(a);
    expect(after).toMatchObject({ state: 'replicating', outOfSyncBytes: 0, lagWrites: 0 });
    // only the out-of-sync blocks moved (no write ran meanwhile; every block written is non-zero data)
    expect(after.sentBytes - frozen.sentBytes).toBe(frozen.outOfSyncBytes);
    expect(await call<string>(b, 'digest')).toBe(await call<string>(a, 'digest'));
    const sb = await call<Status>(b, 'status');
    expect(sb).toMatchObject({ role: 'secondary', serving: { connected: true } });
    expect(sb.generation).toBe((await call<Status>(a, 'status')).generation);
    expect(problems.get(a)).toEqual([]);
    expect(problems.get(b)).toEqual([]);
    console.info(`broadcast: first copy ${first.sentBytes} B; allocated ${allocated} B; out of sync after the replica page closed: ${frozen.outOfSyncBytes} B, resync sent ${after.sentBytes - frozen.sentBytes} B`);
  });
});

describe('replication between two Chromium pages: the primary page closes mid-load', () => {
  let context: BrowserContext;
  afterAll(async () => {
    await context?.close();
  });

  it('reopened, the primary resyncs only the regions of its activity log, and the volumes are equal', async () => {
    context = await browser.newContext();
    const BIG = 8192 * BS; // 32 MiB: eight activity-log extents of 4 MiB
    const open = async (path: string) => {
      const page = await openPage(context, path, BIG);
      return page;
    };
    let a = await open('rep/pa');
    // 64 blocks in each of the eight extents, before replicating
    const spread = Array.from({ length: 8 * 64 }, (_, i) => Math.floor(i / 64) * 1024 + (i % 64) * 16);
    await call(a, 'writeBlocks', spread, 7);
    const b = await open('rep/pb');
    await call(b, 'serve', { broadcast: 'rep-p', ...TIMING });
    const target = { broadcast: 'rep-p', ...TIMING };
    await call(a, 'replicate', target, { name: 'p', mode: 'sync' });
    await call(a, 'synced');
    expect(await call<string>(b, 'digest')).toBe(await call<string>(a, 'digest'));

    // a load in the first extent only; the primary's page closes in the middle of it
    await call(a, 'startLoad', 8, 1024, 0);
    await expect.poll(() => call<number>(a, 'written')).toBeGreaterThanOrEqual(50);
    await a.close();
    // the replica notices (heartbeats) and listens again
    await expect.poll(async () => (await call<Status>(b, 'status')).serving?.connected, { timeout: 60_000 }).toBe(false);

    a = await open('rep/pa');
    await call(a, 'replicate', target, { name: 'p', mode: 'sync' });
    await call(a, 'synced');
    const s = await session(a);
    expect(s).toMatchObject({ state: 'replicating', outOfSyncBytes: 0 });
    // the resync covered the extent hot at the crash (1024 blocks of 8192), nothing else:
    // the first page's writes there may be lost with it (never flushed) while the replica has them
    await expect.poll(async () => (await call<{ type: string; total?: number }[]>(a, 'events')).filter((e) => e.type === 'progress').map((e) => e.total)).toContain(1024);
    const totals = (await call<{ type: string; total?: number }[]>(a, 'events')).filter((e) => e.type === 'progress').map((e) => e.total);
    expect(new Set(totals)).toEqual(new Set([1024]));
    expect(s.sentBytes).toBeGreaterThan(0);
    expect(s.sentBytes).toBeLessThanOrEqual(1024 * BS);
    expect(await call<string>(b, 'digest')).toBe(await call<string>(a, 'digest'));
    console.info(`primary page closed mid-load: reopened, it resynced one 4 MiB extent of 32 MiB (${s.sentBytes} B sent)`);
  });
});

const noDist = existsSync(DIST) ? undefined : 'dist/ is missing: run `npm run build` first (the replica server runs the built code)';

describe.skipIf(noDist !== undefined)('replication from a Chromium page to a Node replica server over WebSocket (async)', () => {
  let context: BrowserContext;
  let dir: string;
  let child: ChildProcess | undefined;
  const token = 'e2e-replica-token-0123456789abcdef';
  beforeAll(async () => {
    dir = await mkdtemp(join(TMP, 'e2e-rep-server-'));
    context = await browser.newContext();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await context?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function startServer(port: number, allowed = origin): Promise<ChildProcess> {
    const c = fork(SERVER, [join(dir, 'vol'), String(port), allowed, String(SIZE), String(BS)], { env: { ...process.env, STRATADISK_REPLICA_TOKEN: token }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((ok, fail) => {
      c.once('exit', (code, signal) => fail(new Error(`the replica server exited (${code ?? signal}) before it was ready`)));
      c.on('message', (m: { t?: string }) => m?.t === 'ready' && ok());
    });
    c.removeAllListeners('exit');
    return c;
  }

  function ask<T>(c: ChildProcess, t: string, reply = t): Promise<T> {
    return new Promise((ok) => {
      const on = (m: { t?: string }) => {
        if (m?.t !== reply) return;
        c.off('message', on);
        ok(m as T);
      };
      c.on('message', on);
      c.send({ t });
    });
  }

  it('replicates, survives a kill -9 of the server mid-load, resumes, and the volumes are equal', async () => {
    const port = await freePort();
    child = await startServer(port);
    const a = await openPage(context, 'rep/ws');
    await call(a, 'startLoad', 3, 32);
    await expect.poll(() => call<number>(a, 'written')).toBeGreaterThanOrEqual(20);
    await call(a, 'stopLoad');
    const target = { websocket: `ws://127.0.0.1:${port}/replica`, token, ...TIMING };
    await call(a, 'replicate', target, { name: 'ws', mode: 'async' });
    await call(a, 'synced');

    await call(a, 'startLoad', 4, LOAD_BLOCKS);
    const w0 = await call<number>(a, 'written');
    await expect.poll(() => call<number>(a, 'written')).toBeGreaterThanOrEqual(w0 + 100);
    const killed = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await killed;
    await expect.poll(async () => (await call<Status>(a, 'status')).frozen, { timeout: 60_000 }).toBe(true);
    const w1 = await call<number>(a, 'written');
    await expect.poll(() => call<number>(a, 'written')).toBeGreaterThanOrEqual(w1 + 100);
    const { errors } = await call<{ errors: string[] }>(a, 'stopLoad');
    expect(errors).toEqual([]);
    const frozen = await session(a);
    expect(frozen.state).toBe('frozen');
    expect(frozen.outOfSyncBytes).toBeGreaterThan(0);

    // the server again, on the same directory (its volume recovers) and port
    child = await startServer(port);
    await call(a, 'resume');
    await call(a, 'synced');
    await expect.poll(async () => (await session(a)).lagWrites).toBe(0);
    const after = await session(a);
    expect(after).toMatchObject({ state: 'replicating', outOfSyncBytes: 0 });
    expect(after.sentBytes - frozen.sentBytes).toBe(frozen.outOfSyncBytes);
    const remote = await ask<{ digest: string }>(child, 'digest');
    expect(remote.digest).toBe(await call<string>(a, 'digest'));
    const statusText = JSON.stringify(await call<Status>(a, 'status')) + JSON.stringify(await call<unknown[]>(a, 'events'));
    expect(statusText).not.toContain(token);
    expect(problems.get(a)).toEqual([]);
    console.info(`websocket: out of sync after kill -9: ${frozen.outOfSyncBytes} B, resync sent ${after.sentBytes - frozen.sentBytes} B`);
    await ask(child, 'stop', 'stopped');
    child = undefined;
  });

  it('refusals reach the page with a code, never with the token: a wrong token, an origin the server does not list', async () => {
    const port = await freePort();
    child = await startServer(port);
    const a = await openPage(context, 'rep/ws-refused');
    const wrong = 'not-the-token-but-long-enough-0000';
    const badToken = await call<{ ok: boolean; code?: string; message?: string }>(a, 'tryReplicate', { websocket: `ws://127.0.0.1:${port}/replica`, token: wrong, ...TIMING }, { name: 'bad' });
    expect(badToken).toMatchObject({ ok: false, code: 'permission-denied' });
    expect(badToken.message).not.toContain(wrong);
    expect((await call<Status>(a, 'status')).sessions).toEqual([]);
    await ask(child, 'stop', 'stopped');
    // a server that lists another origin: the browser is refused (403) before any byte of ours
    child = await startServer(port, 'http://elsewhere.example');
    const badOrigin = await call<{ ok: boolean; code?: string; message?: string }>(a, 'tryReplicate', { websocket: `ws://127.0.0.1:${port}/replica`, token, ...TIMING }, { name: 'bad' });
    expect(badOrigin).toMatchObject({ ok: false, code: 'io' });
    expect(badOrigin.message).toContain(`allows this page's origin ${origin}`);
    expect(badOrigin.message).not.toContain(token);
    console.info(`refused origin, as the page sees it: ${badOrigin.code}: ${badOrigin.message}`);
    await ask(child, 'stop', 'stopped');
    child = undefined;
  });
});
