/**
 * Issue 14, item 3: `copy` works between any two namespaces the engine has. Here: a Node
 * directory to a store server (RemoteNamespace over HTTP, a subdirectory holding the base), and
 * back from the server into memory.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { RemoteNamespace } from '../../../src/store/remote.js';
import { serveStore } from '../../../src/store/store-server.js';
import { copyVolume } from '../../../src/transfer/copy.js';
import { tempDir } from '../cli/harness.js';
import { BS, baseOnly, fourLayers, view } from './copy-fixture.js';

const { dir: work, cleanup } = tempDir();
afterAll(cleanup);

describe('copy between backends', () => {
  it('Node directory -> store server holding the base -> memory', async () => {
    const src = new NodeDirNamespace(join(work, 'vm1'), { create: true });
    await fourLayers(src);
    const served = join(work, 'served');
    mkdirSync(join(served, 'vm2'), { recursive: true });
    const server = await serveStore(served);
    try {
      const remote = new RemoteNamespace(`${server.url}vm2#token=${server.token}`);
      await baseOnly(remote);
      const up = await copyVolume(src, remote);
      expect(up).toMatchObject({ into: 'existing', reused: 1, copied: 3, bytesMoved: 13 * BS });
      expect(await view(remote)).toEqual(await view(src));
      const mem = new MemoryNamespace();
      const down = await copyVolume(new RemoteNamespace(`${server.url}vm2#token=${server.token}`, { readOnly: true }), mem, { snapshot: 's2' });
      expect(down).toMatchObject({ into: 'new', copied: 3 });
      expect((await view(mem)).snapshots).toEqual({ base: (await view(src)).snapshots.base, s1: (await view(src)).snapshots.s1, s2: (await view(src)).snapshots.s2 });
    } finally {
      await server.close();
    }
  });
});
