/**
 * One writer per volume across pages of one origin (one browser context shares storage and Web
 * Locks): B gets `locked` in the UI while A writes, opens read-only instead, and can write once
 * A's page is gone.
 */
import type { Browser, BrowserContext } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, chooseVolume, launchBrowser, openDemo, pageProblems, serveDemo, status, type DemoServer } from './harness.js';

let server: DemoServer;
let browser: Browser;

beforeAll(async () => {
  server = await serveDemo();
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe.each(['opfs', 'idb'] as const)('lock race between two pages on %s', (backend) => {
  let context: BrowserContext;
  afterAll(async () => {
    await context?.close();
  });

  it('B gets locked, reads read-only, and writes after A closes', async () => {
    context = await browser.newContext();
    const name = `shared-${backend}`;
    const a = await openDemo(context, server.url);
    await chooseVolume(a, backend, name, '8M', 65536);
    let s = await act(a, '#btn-create');
    expect(s.kind, s.text).toBe('ok');
    await a.selectOption('#pattern', 'stamp');
    await a.fill('#p-offset', '4096');
    await a.fill('#p-text', 'WRITTEN BY A');
    expect((await act(a, '#btn-write')).kind).toBe('ok');
    expect((await act(a, '#btn-flush')).kind).toBe('ok');

    // B: a writable open is refused with the lock's code; the status line offers read-only.
    const b = await openDemo(context, server.url);
    await chooseVolume(b, backend, name);
    s = await act(b, '#btn-open');
    expect(s.kind).toBe('error');
    expect(s.code).toBe('locked');
    expect(s.text).toMatch(/^locked /);
    await expect.poll(() => b.locator('#btn-status-ro').isVisible()).toBe(true);

    s = await act(b, '#btn-status-ro');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toContain(`Opened ${name} (${backend}, read-only)`);
    expect(await b.locator('#vol-info').textContent()).toContain('read-only');
    expect(await b.locator('#btn-write').isDisabled()).toBe(true);
    expect(await b.locator('#btn-snapshot').isDisabled()).toBe(true);
    await b.fill('#cmp-offset', '4096');
    await b.fill('#cmp-length', '32');
    s = await act(b, '#btn-compare');
    expect(s.kind, s.text).toBe('ok');
    expect(await b.locator('#cmp-live-text').textContent()).toContain('WRITTEN BY A');

    // A is not disturbed by B.
    await a.fill('#p-offset', '65536');
    await a.fill('#p-text', 'A AGAIN');
    expect((await act(a, '#btn-write')).kind).toBe('ok');
    expect((await act(a, '#btn-flush')).kind).toBe('ok');

    // A's page goes away: its worker ends and the lock is released; B may now write.
    await a.close();
    await expect
      .poll(
        async () => {
          const r = await act(b, '#btn-open');
          return r.kind === 'ok' ? r.text : r.code;
        },
        { timeout: 20_000, interval: 250 },
      )
      .toContain(`Opened ${name} (${backend})`);
    expect(await b.locator('#vol-info').textContent()).not.toContain('read-only');
    await b.fill('#cmp-offset', '65536');
    s = await act(b, '#btn-compare');
    expect(await b.locator('#cmp-live-text').textContent()).toContain('A AGAIN');
    await b.selectOption('#pattern', 'random');
    await b.fill('#p-count', '4');
    s = await act(b, '#btn-write');
    expect(s.kind, s.text).toBe('ok');
    expect((await status(b)).text).toContain('Wrote 4 random blocks');
    expect(pageProblems.get(b)).toEqual([]);
  });
});
