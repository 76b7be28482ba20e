/**
 * Global set-up of the browser project for the mirror-to-server test: a store server
 * (`serveStore`, src/store/store-server.ts) on loopback over a temporary directory, answering
 * CORS for the test page's origin only, and a
 * verification endpoint that opens a volume of that directory **in Node** (NodeDirNamespace)
 * and answers the SHA-256 of its live view and of each snapshot, and whether `check` passes.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { NAME_PATTERN } from '../../../src/store/store.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { serveStore } from '../../../src/store/store-server.js';
import { storeObjectArea } from '../../../src/transfer/store-server-objects.js';
import { Volume } from '../../../src/volume/volume.js';
import type { StoreServerInfo } from './store-server.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-served-'));
  // CORS for the test page only: vitest serves it from a loopback origin whose port it picks
  // when the browser starts (after this set-up), so the origin is matched by its shape.
  const testPage = (origin: string) => /^http:\/\/(localhost|127\.0\.0\.1):\d{1,5}$/.test(origin);
  const server = await serveStore(dir, { allowOrigins: testPage, routes: [storeObjectArea()] }); // the object area: http-objects.test.ts
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const verify = createServer((req, res) => {
    const headers = { 'access-control-allow-origin': '*', 'cross-origin-resource-policy': 'cross-origin', 'content-type': 'application/json' };
    const name = new URL(req.url ?? '/', 'http://x').searchParams.get('volume') ?? '';
    void (async () => {
      if (!NAME_PATTERN.test(name)) throw new Error('bad volume name');
      const v = await Volume.open(new NodeDirNamespace(join(dir, name)), { readOnly: true });
      try {
        const snapshots: Record<string, string> = {};
        for (const s of v.snapshots()) snapshots[s.name] = sha(await v.openSnapshot(s.name).read(0, v.size));
        return { live: sha(await v.read(0, v.size)), size: v.size, snapshots, check: (await v.check()).ok };
      } finally {
        await v.close();
      }
    })().then(
      (body) => res.writeHead(200, headers).end(JSON.stringify(body)),
      (e: unknown) => res.writeHead(500, headers).end(JSON.stringify({ error: String(e) })),
    );
  });
  await new Promise<void>((r) => verify.listen(0, '127.0.0.1', r));
  const info: StoreServerInfo = { url: server.url, token: server.token, verify: `http://127.0.0.1:${(verify.address() as AddressInfo).port}/` };
  project.provide('storeServer', info);
  return async () => {
    await server.close();
    verify.closeAllConnections();
    await new Promise<void>((r) => verify.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  };
}
