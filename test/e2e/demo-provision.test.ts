/**
 * The demo's copy-on-read panel in real Chromium against a local image server the test starts:
 * create a volume from an image URL (nothing local yet), read and write (local / remote /
 * modified in the figures and the block map legend), stream with a progress bar, pause, resume
 * and cancel a rate-limited stream, stream the rest, reset to the image.
 */
import type { Browser, BrowserContext, Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startImageServer, type ImageServer } from '../../src/bench/image-server.ts';
import { act, chooseVolume, idle, launchBrowser, openDemo, pageProblems, serveDemo, type DemoServer } from './harness.ts';

const MiB = 1 << 20;
const IMAGE = 8 * MiB;

let server: DemoServer;
let images: ImageServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;

function image(): Uint8Array {
  const b = new Uint8Array(IMAGE);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + (i >> 16)) & 0xff;
  return b;
}

beforeAll(async () => {
  images = await startImageServer(image());
  server = await serveDemo();
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  page = await openDemo(context, server.url);
}, 180_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await server?.close();
  await images?.close();
});

const figure = (key: 'remoteBytes' | 'localBytes' | 'modifiedBlocks') => page.locator('#provision').evaluate((el, k) => Number((el as HTMLElement).dataset[k]), key);

describe('demo copy-on-read panel', () => {
  it('creates a volume from an image URL, shows local/remote/modified, streams with pause/cancel, resets', { timeout: 180_000 }, async () => {
    const name = `cor-${Date.now().toString(36)}`;
    await chooseVolume(page, 'opfs', name, undefined, 65536);
    await page.fill('#vol-image', images.url);
    const created = await act(page, '#btn-create-image');
    expect(created.kind, created.text).toBe('ok');
    expect(created.text).toContain('nothing local yet');
    expect(await page.locator('#provision').isVisible()).toBe(true);
    expect(await figure('remoteBytes')).toBe(IMAGE);
    expect(await page.locator('#legend li[data-key="remote"]').textContent()).toContain('not fetched yet');

    // A read fetches blocks (local), a write makes one modified.
    await page.fill('#cmp-offset', String(3 * MiB));
    expect((await act(page, '#btn-compare')).kind).toBe('ok');
    expect(await page.locator('#cmp-live-text').textContent()).not.toBe('');
    expect(await figure('localBytes')).toBeGreaterThan(0);
    await page.selectOption('#pattern', 'stamp');
    await page.fill('#p-offset', String(5 * MiB));
    expect((await act(page, '#btn-write')).kind).toBe('ok');
    expect(await figure('modifiedBlocks')).toBe(1);
    await expect.poll(() => page.locator('#legend li').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('local: fetched from the image'), expect.stringContaining('modified')]));

    // A slow stream: pause, resume, cancel (what was fetched stays).
    await page.fill('#cor-rate', '0.5');
    await page.locator('#cor-stream').click();
    await page.locator('#cor-pause:not([disabled])').click();
    await expect.poll(() => page.locator('#provision').getAttribute('data-streaming')).toBe('paused');
    expect(await page.locator('#cor-pause').textContent()).toBe('Resume');
    await page.locator('#cor-pause').click();
    await expect.poll(() => page.locator('#provision').getAttribute('data-streaming')).toBe('yes');
    await page.locator('#cor-cancel').click();
    await expect.poll(() => page.locator('#provision').getAttribute('data-streaming')).toBe('no');
    expect(await page.locator('#cor-result').textContent()).toContain('stream cancelled');
    expect(await page.locator('#status').getAttribute('data-code')).toBe('aborted');
    const remoteAfterCancel = await figure('remoteBytes');
    expect(remoteAfterCancel).toBeGreaterThan(0);

    // The rest, unthrottled: progress bar full, nothing remote.
    await page.fill('#cor-rate', '');
    await page.locator('#cor-stream').click();
    await expect.poll(() => page.locator('#cor-result').textContent(), { timeout: 60_000 }).toContain('every block is local');
    expect(await page.locator('#cor-progress').evaluate((p) => (p as HTMLProgressElement).position)).toBe(1);
    await idle(page);
    await page.evaluate(() => window.__strata!.refresh());
    expect(await figure('remoteBytes')).toBe(0);
    expect(await figure('modifiedBlocks')).toBe(1);

    // Reset: the stamp is gone, the bytes are the image's again, still all local.
    const requests = images.requests;
    await page.locator('#cor-reset').click();
    await expect.poll(() => page.locator('#cor-result').textContent()).toContain('reads as the image again');
    await page.evaluate(() => window.__strata!.refresh());
    expect(await figure('modifiedBlocks')).toBe(0);
    const back = await page.evaluate(async (o) => Array.from(await window.__strata!.volume!.read(o, 16)), 5 * MiB);
    expect(back).toEqual(Array.from(image().subarray(5 * MiB, 5 * MiB + 16)));
    expect(images.requests).toBe(requests);
    expect(pageProblems.get(page)).toEqual([]);
  });
});
