/**
 * Closing or killing a page mid-write: page A streams unaligned writes with a flush every few
 * writes and reports each completed flush to the test; then A goes away three ways — page.close(),
 * context.close() (a browser with its own profile, so storage outlives it), and SIGKILL of the
 * browser process. A new page reopens the volume: every flushed write is there and check() is clean.
 */
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, launchPersistent, openDemo, pageProblems, profileDir, serveDemo, type DemoServer } from './harness.js';

type Backend = 'opfs' | 'idb';
const WRITE = 192 * 1024 + 100; // not block-aligned: partial blocks are copied up
const STRIDE = WRITE + 4096 + 12; // gaps between writes: untouched bytes stay zero
const SIZE = 64 << 20;
const FLUSH_EVERY = 3;
/** Close the page once at least this many writes are known durable. */
const CLOSE_AFTER = 24;

let server: DemoServer;
let browser: Browser;
const dirs: string[] = [];

beforeAll(async () => {
  server = await serveDemo();
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Progress {
  /** writes 0..durable-1 are flushed */
  durable: number;
  snapshot: boolean;
}

/** Starts the workload in `page` (not awaited there); `progress` follows the flushes the page reports. */
async function startWorkload(page: Page, backend: Backend, path: string): Promise<Progress> {
  const progress: Progress = { durable: 0, snapshot: false };
  await page.exposeFunction('__e2eFlushed', (durable: number, snapshot: boolean) => {
    progress.durable = Math.max(progress.durable, durable);
    progress.snapshot ||= snapshot;
  });
  await page.evaluate(
    async ({ backend, path, WRITE, STRIDE, SIZE, FLUSH_EVERY }) => {
      const report = (window as unknown as { __e2eFlushed(n: number, s: boolean): Promise<void> }).__e2eFlushed;
      const v = await window.__strata!.client.createVolume({ backend, path }, { size: SIZE, blockSize: 65536 });
      const fill = (i: number) => {
        const b = new Uint8Array(WRITE);
        for (let j = 0; j < WRITE; j++) b[j] = (i * 131 + j * 7 + (j >> 9)) & 255;
        return b;
      };
      void (async () => {
        let snapshot = false;
        for (let i = 0; (i + 1) * STRIDE < SIZE; i++) {
          await v.write(i * STRIDE + 512, fill(i));
          if ((i + 1) % FLUSH_EVERY === 0) {
            await v.flush();
            if (i + 1 === FLUSH_EVERY * 4) {
              await v.snapshot('mid');
              snapshot = true;
            }
            void report(i + 1, snapshot);
          }
        }
        await v.flush();
        void report(Math.floor((SIZE - 1) / STRIDE), snapshot);
      })();
    },
    { backend, path, WRITE, STRIDE, SIZE, FLUSH_EVERY },
  );
  return progress;
}

async function waitDurable(progress: Progress, n: number): Promise<void> {
  await expect.poll(() => progress.durable, { timeout: 60_000, interval: 20 }).toBeGreaterThanOrEqual(n);
}

interface Verdict {
  mismatched: number[];
  zeroGapsDirty: number[];
  snapshots: string[];
  ok: boolean;
  blocksChecked: number;
  problems: unknown[];
}

/** Reopens the volume in `page` (waiting out a lock a dying page may still hold) and verifies it. */
async function verify(page: Page, backend: Backend, path: string, durable: number): Promise<Verdict> {
  return page.evaluate(
    async ({ backend, path, durable, WRITE, STRIDE }) => {
      const client = window.__strata!.client;
      let v;
      for (let attempt = 0; ; attempt++) {
        try {
          v = await client.openVolume({ backend, path });
          break;
        } catch (e) {
          if ((e as { code?: string }).code !== 'locked' || attempt > 120) throw e;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      const mismatched: number[] = [];
      const zeroGapsDirty: number[] = [];
      for (let i = 0; i < durable; i++) {
        const got = await v.read(i * STRIDE + 512, WRITE);
        for (let j = 0; j < WRITE; j++) {
          if (got[j] !== ((i * 131 + j * 7 + (j >> 9)) & 255)) {
            mismatched.push(i);
            break;
          }
        }
        // The gap after each write was never written: it must read as zeros.
        const gap = await v.read(i * STRIDE + 512 + WRITE, STRIDE - WRITE);
        if (gap.some((x) => x !== 0)) zeroGapsDirty.push(i);
      }
      const snapshots = (await v.snapshots()).map((s) => s.name);
      const report = await v.check();
      await v.close();
      return { mismatched, zeroGapsDirty, snapshots, ok: report.ok, blocksChecked: report.blocksChecked, problems: report.problems };
    },
    { backend, path, durable, WRITE, STRIDE },
  );
}

function expectIntact(verdict: Verdict, progress: Progress): void {
  expect(verdict.mismatched).toEqual([]);
  expect(verdict.zeroGapsDirty.filter((i) => i < progress.durable - 1)).toEqual([]);
  if (progress.snapshot) expect(verdict.snapshots).toContain('mid');
  expect(verdict.problems).toEqual([]);
  expect(verdict.ok).toBe(true);
  // Every durable write touches at least three 64 KiB blocks, all of which check() read.
  expect(verdict.blocksChecked).toBeGreaterThanOrEqual(progress.durable * 3);
}

/** Pids of the browser started with profile `dir` (its main process has no --type= switch). */
function browserPids(dir: string): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes(`--user-data-dir=${dir}`) && !l.includes('--type='))
    .map((l) => Number.parseInt(l.trim(), 10))
    .filter((p) => p > 0);
}

describe.each(['opfs', 'idb'] as const)('a page closed mid-write on %s', (backend) => {
  it('page.close(): a new page in the same context finds every flushed write', async () => {
    const context = await browser.newContext();
    try {
      const path = `volumes/crash-page-${backend}`;
      const a = await openDemo(context, server.url);
      const progress = await startWorkload(a, backend, path);
      await waitDurable(progress, CLOSE_AFTER);
      await a.close();
      const durable = progress.durable;
      expect(durable).toBeGreaterThanOrEqual(CLOSE_AFTER);
      expect(durable).toBeLessThan(Math.floor(SIZE / STRIDE)); // it really was mid-stream

      const b = await openDemo(context, server.url);
      expectIntact(await verify(b, backend, path, durable), progress);
      expect(pageProblems.get(b)).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('context.close(): after a browser restart on the same profile every flushed write is there', async () => {
    const dir = await profileDir();
    dirs.push(dir);
    const path = `volumes/crash-context-${backend}`;
    let context: BrowserContext = await launchPersistent(dir);
    const a = await openDemo(context, server.url);
    const progress = await startWorkload(a, backend, path);
    await waitDurable(progress, CLOSE_AFTER);
    await context.close();
    const durable = progress.durable;

    context = await launchPersistent(dir);
    try {
      const b = await openDemo(context, server.url);
      expectIntact(await verify(b, backend, path, durable), progress);
    } finally {
      await context.close();
    }
  });

  it('SIGKILL of the browser: after a restart on the same profile every flushed write is there', async () => {
    const dir = await profileDir();
    dirs.push(dir);
    const path = `volumes/crash-kill-${backend}`;
    let context: BrowserContext = await launchPersistent(dir);
    const a = await openDemo(context, server.url);
    const progress = await startWorkload(a, backend, path);
    await waitDurable(progress, CLOSE_AFTER);
    const pids = browserPids(dir);
    expect(pids).toHaveLength(1);
    process.kill(pids[0]!, 'SIGKILL');
    const durable = progress.durable;
    await context.close().catch(() => {});
    await expect.poll(() => browserPids(dir), { timeout: 10_000 }).toEqual([]);

    context = await launchPersistent(dir);
    try {
      const b = await openDemo(context, server.url);
      expectIntact(await verify(b, backend, path, durable), progress);
    } finally {
      await context.close();
    }
  });
});
