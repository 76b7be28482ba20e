/**
 * The mirror job from the browser to a Node server, in real Chromium: a volume in OPFS (worker)
 * is copied to a store server (`serveStore`, started by store-server.global.ts) over HTTP while
 * the page keeps writing, then the handle switches over to the server's copy. Node then opens
 * the server's directory as a volume and reports what it holds, which must be exactly the model.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { StrataClient } from '../../../src/worker/client.js';
import { newWorker, pattern, rejectsWithCode, uniquePath } from '../worker/helpers.js';
import './store-server.js';

const KiB = 1024;
const workers: Worker[] = [];
afterEach(() => {
  for (const w of workers.splice(0)) w.terminate();
});

async function sha(b: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>));
  return [...d].map((x) => x.toString(16).padStart(2, '0')).join('');
}

describe('mirror job from Chromium to a Node store server', () => {
  const server = inject('storeServer');

  for (const flatten of [false, true]) {
    it(`OPFS -> store server (${flatten ? 'flattened' : 'all layers'}) while the page writes, then switches over`, async () => {
      const worker = newWorker();
      workers.push(worker);
      const client = StrataClient.connect(worker);
      const src = { backend: 'opfs' as const, path: uniquePath('mirror-net-src') };
      const name = uniquePath('net');
      const dst = { backend: 'remote' as const, path: `${server.url}${name}#token=${server.token}` };
      const bs = 4 * KiB;
      const blocks = 1024;
      const size = blocks * bs;
      const v = await client.createVolume(src, { size, blockSize: bs });
      const model = new Uint8Array(size);
      const put = async (block: number, seed: number, n = 1) => {
        const data = pattern(n * bs, seed);
        model.set(data, block * bs);
        await v.write(block * bs, data);
      };
      for (let b = 0; b < blocks; b += 8) await put(b, b + 1, 5);
      await v.snapshot('base');
      const base = model.slice();
      for (let b = 1; b < blocks; b += 4) await put(b, 10_000 + b);
      await v.flush();

      let done = false;
      const job = v.mirror(dst, { flatten }).finally(() => (done = true));
      let n = 0;
      while (!done) {
        await put((n * 37) % blocks, 50_000 + n);
        n++;
      }
      const info = await job;
      expect(n).toBeGreaterThan(0);
      expect(info.state).toBe('completed');
      // the handle is the server's copy now: more writes go there
      for (let i = 0; i < 10; i++) await put((i * 101) % blocks, 90_000 + i);
      await v.flush();
      await v.close();

      const got = (await (await fetch(`${server.verify}?volume=${name}`)).json()) as { live: string; size: number; snapshots: Record<string, string>; check: boolean };
      expect(got.size).toBe(size);
      expect(got.check).toBe(true);
      expect(got.live).toBe(await sha(model));
      expect(got.snapshots).toEqual(flatten ? {} : { base: await sha(base) });
      await client.deleteVolume(src);
      await client.close();
    });
  }

  it('a wrong token is refused with a clear error, and the source stays in use', async () => {
    const worker = newWorker();
    workers.push(worker);
    const client = StrataClient.connect(worker);
    const src = { backend: 'memory' as const, path: uniquePath('mirror-net-bad') };
    const v = await client.createVolume(src, { size: 64 * KiB, blockSize: 4 * KiB });
    await v.write(0, pattern(4096, 1));
    const e = await rejectsWithCode(v.mirror({ backend: 'remote', path: `${server.url}${uniquePath('bad')}#token=wrong` }), 'invalid-argument');
    expect(e.message).toContain('token');
    await v.write(4096, pattern(4096, 2));
    await v.close();
    await client.close();
  });
});
