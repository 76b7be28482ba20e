/**
 * Copy-on-read volumes in real Chromium: the worker host (OPFS) reads an image from local HTTP
 * servers started by the global set-up (cross-origin: CORS + CORP), fetches each block once,
 * keeps writes local, streams the rest, works offline afterwards, survives slow and cut
 * answers, and reports image-changed across the worker boundary.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { StrataClient, type BackendSpec, type ProgressEvent } from '../../../src/worker/client.js';
import { newWorker, rejectsWithCode, uniquePath } from '../worker/helpers.js';
import { IMAGE_SIZE, testImage } from './image.js';

const KiB = 1024;
const servers = inject('imageServers');
const img = testImage(IMAGE_SIZE, 1);
const workers: Worker[] = [];
function spawn(): StrataClient {
  const w = newWorker();
  workers.push(w);
  return StrataClient.connect(w);
}
afterEach(() => {
  for (const w of workers.splice(0)) w.terminate();
});

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

describe('copy-on-read in Chromium (worker + OPFS)', () => {
  it('reads fetch once into OPFS, writes stay local, stream, then offline in a new worker', async () => {
    const spec: BackendSpec = { backend: 'opfs', path: uniquePath('remote') };
    const client = spawn();
    const v = await client.createVolume(spec, { backing: servers.offline, blockSize: 16 * KiB });
    expect(v.size).toBe(IMAGE_SIZE);
    expect(same(await v.read(100, 50_000), img.subarray(100, 50_100))).toBe(true);
    let info = await v.info();
    expect(info.remote!.localBytes).toBe(64 * KiB); // 4 blocks of 16 KiB (no read-ahead on a first miss)
    const w = new Uint8Array(1000).fill(9);
    await v.write(200_000, w.slice());
    const events: ProgressEvent[] = [];
    await v.stream({ onProgress: (e) => events.push(e) });
    expect(events.at(-1)!.done).toBe(events.at(-1)!.total);
    info = await v.info();
    expect(info.remote).toMatchObject({ remoteBytes: 0, modifiedBlocks: 1 });
    await v.close();
    await client.close();

    await fetch(`${servers.control}/stop-offline`);
    const again = spawn();
    const v2 = await again.openVolume(spec);
    const want = img.slice();
    want.set(w, 200_000);
    expect(same(await v2.read(0, IMAGE_SIZE), want)).toBe(true);
    await v2.reset();
    expect(same(await v2.read(0, IMAGE_SIZE), img)).toBe(true);
    await v2.close();
    await again.deleteVolume(spec);
    await again.close();
  });

  for (const kind of ['slow', 'dropping'] as const) {
    it(`reads correct bytes from a ${kind} server`, async () => {
      const client = spawn();
      const v = await client.createVolume({ backend: 'memory', path: uniquePath(kind) }, { backing: servers[kind], blockSize: 16 * KiB });
      for (const [off, len] of [[0, 70_000], [500_000, 123_456], [IMAGE_SIZE - 5000, 5000]] as const) {
        expect(same(await v.read(off, len), img.subarray(off, off + len)), `${off}+${len}`).toBe(true);
      }
      await v.close();
      await client.close();
    });
  }

  it('an image changed mid-way fails with image-changed; refresh moves to the new version', async () => {
    const client = spawn();
    const v = await client.createVolume({ backend: 'memory', path: uniquePath('changing') }, { backing: servers.changing, blockSize: 16 * KiB });
    expect(same(await v.read(0, 16 * KiB), img.subarray(0, 16 * KiB))).toBe(true);
    const version = Number(await (await fetch(`${servers.control}/change`)).text());
    await rejectsWithCode(v.read(500_000, 100), 'image-changed');
    expect(await v.refreshImage()).toBe(true);
    const img2 = testImage(IMAGE_SIZE, version);
    expect(same(await v.read(0, IMAGE_SIZE), img2)).toBe(true);
    await v.close();
    await client.close();
  });
});
