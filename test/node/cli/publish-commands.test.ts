/** `publish`, `versions` and `gc` into a local directory, as a user runs them. */
import { readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DirObjectStore } from '../../../src/transfer/dir-objects.js';
import { openPublishedVersion } from '../../../src/transfer/published-version.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { cli, MiB, ok, pattern, tempDir } from './harness.js';

const t = tempDir();
afterAll(t.cleanup);
let seq = 0;
const path = (name: string) => join(t.dir, `${seq++}-${name}`);

async function volumeWith(size: string, writes: [offset: number, bytes: number, seed: number][]): Promise<string> {
  const vol = path('vol');
  await ok(['create', vol, '--size', size]);
  for (const [offset, n, seed] of writes) {
    const f = path('in.bin');
    writeFileSync(f, pattern(n, seed));
    await ok(['write', vol, '--offset', String(offset), f]);
  }
  return vol;
}

async function readVolume(dir: string, snapshot?: string): Promise<Uint8Array> {
  const v = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
  try {
    const r = snapshot ? v.openSnapshot(snapshot) : v;
    return await r.read(0, r.size);
  } finally {
    await v.close();
  }
}

async function readPublished(store: string, ref: { image: string; tag: string } | { contentId: string }): Promise<Uint8Array> {
  const objects = await DirObjectStore.open(store);
  const v = await openPublishedVersion(objects, ref);
  return v.read(0, v.size);
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe('publish / versions / gc', () => {
  it('publishes a volume and a snapshot, lists them, and gc keeps the tagged one', async () => {
    const vol = await volumeWith('16M', [[1 * MiB, 3 * MiB, 1]]);
    await ok(['snapshot', vol, 'one']);
    await ok(['write', vol, '--offset', String(8 * MiB), (writeFileSync(path('x'), pattern(MiB, 2)), join(t.dir, `${seq - 1}-x`))]);
    const store = path('store');
    const first = JSON.parse(await ok(['publish', `${vol}@one`, '--to', store, '--name', 'disk', '--tag', 'one', '--json']));
    expect(first).toMatchObject({ image: 'disk', tag: 'one', chunks: 48, chunksUploaded: 48, packsWritten: 1 });
    expect(first.contentId).toMatch(/^[0-9a-f]{64}$/);
    expect(first.bytesUploaded).toBeGreaterThan(3 * MiB);
    const second = JSON.parse(await ok(['publish', vol, '--to', store, '--name', 'disk', '--json']));
    expect(second).toMatchObject({ chunks: 64, chunksUploaded: 16 });
    expect(second.packBytesUploaded).toBe(1 * MiB);
    expect(same(await readPublished(store, { image: 'disk', tag: 'one' }), await readVolume(vol, 'one'))).toBe(true);
    expect(same(await readPublished(store, { image: 'disk', tag: 'latest' }), await readVolume(vol))).toBe(true);

    const text = await ok(['versions', store]);
    expect(text).toContain(first.contentId);
    expect(text).toContain(second.contentId);
    const listed = JSON.parse(await ok(['versions', store, '--json']));
    expect(listed.versions.map((v: { contentId: string; tags: string[] }) => [v.contentId, v.tags])).toEqual([
      [second.contentId, ['latest']],
      [first.contentId, ['one']],
    ]);
    // a third version moves latest; gc --keep 1 drops the second (untagged now), keeps "one"
    await ok(['write', vol, '--offset', '0', (writeFileSync(path('y'), pattern(MiB, 3)), join(t.dir, `${seq - 1}-y`))]);
    const third = JSON.parse(await ok(['publish', vol, '--to', store, '--name', 'disk', '--json']));
    const dry = JSON.parse(await ok(['gc', store, '--keep', '1', '--dry-run', '--json']));
    expect(dry).toMatchObject({ keptVersions: 2, deletedVersions: 1 });
    expect((await ok(['versions', store])).split('\n').length).toBe(5); // header + 3 versions + end
    const g = JSON.parse(await ok(['gc', store, '--keep', '1', '--json']));
    expect(g).toMatchObject({ keptVersions: 2, deletedVersions: 1 });
    expect(same(await readPublished(store, { contentId: third.contentId }), await readVolume(vol))).toBe(true);
    expect(same(await readPublished(store, { image: 'disk', tag: 'one' }), await readVolume(vol, 'one'))).toBe(true);
    const after = await cli(['versions', store]);
    expect(after.stdout).not.toContain(second.contentId);
    // files 0600, directories 0700
    const packs = join(store, 'packs');
    expect(statSync(store).mode & 0o777).toBe(0o700);
    expect(statSync(packs).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(packs)) expect(statSync(join(packs, f)).mode & 0o777).toBe(0o600);
  });

  it('republishing unchanged content keeps the version and uploads no chunk', async () => {
    const vol = await volumeWith('8M', [[0, 2 * MiB, 4]]);
    const store = path('store');
    const a = JSON.parse(await ok(['publish', vol, '--to', store, '--json']));
    const b = JSON.parse(await ok(['publish', vol, '--to', store, '--json']));
    expect(b).toMatchObject({ contentId: a.contentId, unchanged: true, chunksUploaded: 0, packsWritten: 0 });
    expect((await ok(['publish', vol, '--to', store]))).toMatch(/unchanged: it is still version/);
  });

  it('Ctrl-C during publish makes no version; the rerun completes it', async () => {
    const vol = await volumeWith('64M', [[0, 40 * MiB, 5]]);
    const store = path('store');
    const ac = new AbortController();
    let bars = 0;
    const r = await cli(['publish', vol, '--to', store, '--name', 'big'], {
      isTTY: true,
      signal: ac.signal,
      stderr: {
        write: (s: string) => {
          // abort at the first bar that shows progress (a known point: reading, before any manifest)
          if (/publish \[/.test(s) && !/ 0% /.test(s) && bars++ === 0) ac.abort();
        },
      },
    });
    expect(r.code).toBe(130);
    const none = await cli(['versions', store]);
    expect(none.stdout).toContain('No published versions');
    const again = JSON.parse(await ok(['publish', vol, '--to', store, '--name', 'big', '--json']));
    expect(again.chunks).toBe(640);
    expect(same(await readPublished(store, { image: 'big', tag: 'latest' }), await readVolume(vol))).toBe(true);
  });

  it('refuses bad names, a missing store, a symlink inside the store, and damaged objects', async () => {
    const vol = await volumeWith('4M', [[0, MiB, 6]]);
    const store = path('store');
    expect((await cli(['publish', vol, '--to', store, '--tag', '../x'])).code).toBe(2);
    const missing = await cli(['versions', path('nothing')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/not-found/);
    const pub = JSON.parse(await ok(['publish', vol, '--to', store, '--json']));
    // a link planted for a segment is never followed
    const segs = join(store, 'segments');
    const [seg] = readdirSync(segs);
    const outside = path('outside');
    writeFileSync(outside, 'x');
    const { renameSync } = await import('node:fs');
    renameSync(join(segs, seg!), path('moved'));
    symlinkSync(outside, join(segs, seg!));
    const bad = await cli(['gc', store, '--keep', '1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unsafe-path/);
    expect(pub.contentId).toMatch(/^[0-9a-f]{64}$/);
  });
});
