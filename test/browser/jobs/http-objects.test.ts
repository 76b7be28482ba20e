/**
 * The ObjectStore conformance suite for HttpObjectStore from a real Chromium page: the store
 * server's object area (started by store-server.global.ts, CORS for the test page only) over
 * the browser's fetch, with CORS preflights for PUT, Range and If-None-Match. The tests share
 * the one server, so each starts and ends with the area emptied.
 */
import { expect, inject, it } from 'vitest';
import { HttpObjectStore } from '../../../src/transfer/http-objects.js';
import { objectStoreConformance } from '../../node/transfer/object-store-conformance.js';
import './store-server.js';

async function empty(store: HttpObjectStore): Promise<void> {
  const keys: string[] = [];
  for await (const o of store.list('')) keys.push(o.key);
  await store.delete(keys);
}

objectStoreConformance(
  'store server object area from Chromium',
  async () => {
    const server = inject('storeServer');
    const store = new HttpObjectStore(server.url, { token: server.token, retryDelayMs: 10 });
    await empty(store);
    return { store, cleanup: () => empty(store) };
  },
  { manyKeys: 1003 },
);

it('a wrong token is permission-denied in the browser too', async () => {
  const server = inject('storeServer');
  const wrong = new HttpObjectStore(server.url, { token: 'B'.repeat(43) });
  const e = await wrong.head('x').catch((x: unknown) => x as { code?: string; message: string });
  expect(e && (e as { code?: string }).code).toBe('permission-denied');
  expect((e as { message: string }).message).not.toContain('B'.repeat(43));
});
