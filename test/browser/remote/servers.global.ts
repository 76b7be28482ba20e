/**
 * Global set-up of the browser project: local image servers the page's worker reads with range
 * requests (CORS and Cross-Origin-Resource-Policy set, since the test page is cross-origin
 * isolated): a normal one, a slow one, one cutting every other answer mid-body, one whose image
 * the test replaces mid-way, one the test stops (offline), and a control endpoint for those two.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestProject } from 'vitest/node';
import { startImageServer } from '../../../src/bench/image-server.js';
import { IMAGE_SIZE, testImage, type ImageServers } from './image.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const img = testImage(IMAGE_SIZE, 1);
  const normal = await startImageServer(img);
  const slow = await startImageServer(img, { delayMs: 40 });
  const dropping = await startImageServer(img, { dropEvery: 2 });
  const changing = await startImageServer(img);
  const offline = await startImageServer(img);
  let version = 1;
  const control = createServer((req, res) => {
    const cors = { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' };
    if (req.url === '/change') changing.setImage(testImage(IMAGE_SIZE, ++version));
    else if (req.url === '/stop-offline') void offline.close();
    else {
      res.writeHead(404, cors).end();
      return;
    }
    res.writeHead(200, cors).end(String(version));
  });
  await new Promise<void>((r) => control.listen(0, '127.0.0.1', r));
  const servers: ImageServers = {
    normal: normal.url,
    slow: slow.url,
    dropping: dropping.url,
    changing: changing.url,
    offline: offline.url,
    control: `http://127.0.0.1:${(control.address() as AddressInfo).port}`,
  };
  project.provide('imageServers', servers);
  return async () => {
    for (const s of [normal, slow, dropping, changing, offline]) await s.close().catch(() => {});
    control.closeAllConnections();
    await new Promise<void>((r) => control.close(() => r()));
  };
}
