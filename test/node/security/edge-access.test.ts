/**
 * The edge serves published versions only: whatever path a client sends, the only objects read
 * are a tag of the named image, version manifests, and the segments and packs they name. No
 * listing, no lease, no key built from the raw path.
 */
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DirObjectStore } from '../../../src/transfer/dir-objects.ts';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';
import { createEdgeHandler } from '../../../src/edge/handler.ts';
import { createVersionCache } from '../../../src/edge/version-cache.ts';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.ts';
import type { ObjectStore } from '../../../src/transfer/object-store.ts';
import { publish } from '../../../src/transfer/publish.ts';
import { openPublishedVersion } from '../../../src/transfer/published-version.ts';
import { KiB, makeVolume, MiB } from '../transfer/fixtures.ts';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const built = existsSync(BIN);
const HEX = '[0-9a-f]{64}';
const ALLOWED = new RegExp(`^(images/[A-Za-z0-9._-]{1,128}/tags/[A-Za-z0-9._-]{1,128}|versions/${HEX}|segments/${HEX}|packs/${HEX}\\.pack)$`);

function recording(inner: MemoryObjectStore): { store: ObjectStore; keys: string[]; listed: string[] } {
  const keys: string[] = [];
  const listed: string[] = [];
  const store: ObjectStore = {
    description: 'recording',
    get: (k, r, s) => (keys.push(k), inner.get(k, r, s)),
    head: (k, s) => (keys.push(k), inner.head(k, s)),
    put: () => Promise.reject(new Error('the edge must not write')),
    list: (p, s) => (listed.push(p), inner.list(p, s)),
    delete: () => Promise.reject(new Error('the edge must not delete')),
  };
  return { store, keys, listed };
}

describe('edge access: only published versions', () => {
  it('hostile paths read nothing but tags, manifests, and the segments and packs a manifest names', async () => {
    const { vol } = await makeVolume(1 * MiB, 64 * KiB);
    const inner = new MemoryObjectStore();
    const r = await publish(inner, vol, { image: 'disk' });
    await vol.close();
    await inner.put('secret/key', new TextEncoder().encode('do not serve'));
    await inner.put('leases/publish-abc', new TextEncoder().encode('{}'));
    const { store, keys, listed } = recording(inner);
    const handler = createEdgeHandler({ open: createVersionCache({ open: (ref, signal) => openPublishedVersion(store, 'contentId' in ref ? { contentId: ref.contentId } : ref, { signal }) }) });
    const paths = [
      '/secret/key', '/leases/publish-abc', '/secret/%6Bey', '/images/disk', '/images/disk/tags/latest', '/disk/../secret/key', '/disk/..%2fsecret', '/disk/%2e%2e',
      '/..', '/.', '/disk/.', '/disk/..', '/./latest', '/disk//latest', '//disk/latest', '/disk/latest?key=secret/key', '/disk/latest#x', '/disk/@../../x',
      `/versions/@${r.contentId}`, `/packs/@${r.contentId}`, '/disk/\\..\\secret', '/disk/la test', '/dísk/latest', `/disk/@${r.contentId}/x`, '/disk/' + 'a'.repeat(5000),
    ];
    const served: string[] = [];
    for (const p of paths) {
      for (const method of ['GET', 'HEAD', 'POST', 'OPTIONS']) {
        const res = await handler(new Request(`http://edge.test${p}`, { method }));
        const body = new Uint8Array(await res.arrayBuffer());
        if (res.status >= 200 && res.status < 300 && method === 'GET') served.push(p);
        expect(new TextDecoder().decode(body)).not.toContain('do not serve');
      }
    }
    // the query and fragment are not part of the route: those name the real version
    expect(served.sort()).toEqual(['/disk/latest#x', '/disk/latest?key=secret/key']);
    expect(listed).toEqual([]);
    for (const k of keys) expect(k, k).toMatch(ALLOWED);
  });
});

describe.skipIf(!otherUser || !built)(`serve-edge of a directory another user cannot read ${otherUserSkip ?? (built ? '' : '(needs dist/: npm run build)')}`, () => {
  it('stops at startup with a code, instead of serving 502s', async () => {
    const t = mkdtempSync(join(tmpdir(), 'stratadisk-edge-'));
    try {
      chmodSync(t, 0o711); // the other user may traverse to the store, whose own mode (0700) refuses it
      const { vol } = await makeVolume(256 * KiB, 64 * KiB);
      const store = join(t, 'pub');
      await publish(await DirObjectStore.open(store, { create: true }), vol, { image: 'disk' });
      await vol.close();
      const r = await otherUser!.run(process.execPath, [BIN, 'serve-edge', store, '--port', '0'], { timeoutMs: 20_000 });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^stratadisk: [a-z-]+: .*(permission|EACCES|cannot)/i);
      expect(r.stdout).toBe('');
    } finally {
      rmSync(t, { recursive: true, force: true });
    }
  });
});
