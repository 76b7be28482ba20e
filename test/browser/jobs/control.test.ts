import { expect, it } from 'vitest';
import { StrataClient } from '../../../src/worker/client.js';
import { newWorker, pattern, uniquePath } from '../worker/helpers.js';

it('a mirror in the worker can be paused, resumed and cancelled from the page', async () => {
  const worker = newWorker();
  const client = StrataClient.connect(worker);
  const src = { backend: 'memory' as const, path: uniquePath('ctl-src') };
  const dst = { backend: 'memory' as const, path: uniquePath('ctl-dst') };
  const bs = 4096;
  const v = await client.createVolume(src, { size: 64 * bs, blockSize: bs });
  for (let b = 0; b < 64; b++) await v.write(b * bs, pattern(bs, b + 1));
  let ctl: { pause(): Promise<boolean>; resume(): Promise<boolean> } | undefined;
  const states: string[] = [];
  const abort = new AbortController();
  const p = v.mirror(dst, { rateLimit: 8 * bs, control: (c) => (ctl = c), onProgress: (i) => states.push(i.state), signal: abort.signal });
  await new Promise((r) => setTimeout(r, 50));
  expect(await ctl!.pause()).toBe(true);
  await new Promise((r) => setTimeout(r, 50));
  expect(await ctl!.resume()).toBe(true);
  expect(await ctl!.pause()).toBe(true);
  abort.abort(); // cancelled while paused
  await expect(p).rejects.toMatchObject({ code: 'aborted' });
  expect(states).toContain('paused');
  await v.write(0, pattern(bs, 99)); // the original is still the live volume
  await client.close();
  worker.terminate();
});
