/**
 * The demo's jobs panel in real Chromium: mirror an OPFS volume to IndexedDB with a progress
 * bar; pause, resume and cancel a second (slow) mirror; the demo then works on the copy.
 */
import type { Browser, BrowserContext, Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, chooseVolume, idle, launchBrowser, openDemo, pageProblems, serveDemo, status, type DemoServer } from './harness.js';

let server: DemoServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  server = await serveDemo();
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  page = await openDemo(context, server.url);
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await server?.close();
});

describe('demo jobs panel', () => {
  it('mirrors the open volume to the other store with a progress bar, then works on the copy', async () => {
    const name = `jobs-${Date.now().toString(36)}`;
    await chooseVolume(page, 'opfs', name, '64M', 65536);
    expect((await act(page, '#btn-create')).kind).toBe('ok');
    await page.selectOption('#pattern', 'random');
    await page.fill('#p-count', '60');
    expect((await act(page, '#btn-write')).kind).toBe('ok');
    await page.fill('#snap-name', 'before');
    expect((await act(page, '#btn-snapshot')).kind).toBe('ok');
    await page.fill('#p-count', '30');
    expect((await act(page, '#btn-write')).kind).toBe('ok');
    const s = await act(page, '#btn-mirror');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toContain(`Mirrored ${name} to IndexedDB`);
    expect(await page.locator('#job-result').textContent()).toMatch(/^done: .* copied; the volume now lives in IndexedDB/);
    expect(await page.locator('#job-progress').evaluate((p) => (p as HTMLProgressElement).position)).toBe(1);
    expect(await page.locator('#known li').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining(`${name}-idb`)]));
    // the copy keeps the snapshot and takes writes
    expect(await page.locator('#snap-list tr[data-snapshot]').count()).toBe(1);
    expect((await act(page, '#btn-write')).kind).toBe('ok');
    expect((await act(page, '#btn-check')).text).toMatch(/^Check clean/);
  });

  it('pauses, resumes and cancels a running mirror', async () => {
    // A slow job (rate-limited): the copy of the IndexedDB volume back to OPFS.
    await page.fill('#job-rate', '0.2');
    await page.locator('#btn-mirror').click();
    await page.locator('#btn-job-pause:not([disabled])').click();
    expect(await page.locator('#btn-job-pause').textContent()).toBe('Resume');
    await page.locator('#btn-job-pause').click();
    expect(await page.locator('#btn-job-pause').textContent()).toBe('Pause');
    await page.locator('#btn-job-pause').click(); // cancelled while paused
    await page.locator('#btn-job-cancel').click();
    await idle(page);
    const s = await status(page);
    expect(s.kind, s.text).toBe('error');
    expect(s.code).toBe('aborted');
    expect(await page.locator('#job-result').textContent()).toContain('mirror cancelled');
    expect(await page.locator('#btn-job-cancel').isDisabled()).toBe(true);
    expect(pageProblems.get(page)).toEqual([]);
  });
});
