/**
 * Host and client from source over a MessageChannel in one thread: the same comlink wiring as a
 * worker (structured clone, transfer, the `throw` handler, proxied callbacks), without needing
 * the built dist/ that the worker_threads tests spawn.
 */
import { MessageChannel } from 'node:worker_threads';
import { afterEach, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { StrataClient, type ProgressEvent } from '../../../src/worker/client.js';
import { exposeEngine } from '../../../src/worker/host.js';
import { memoryBackend } from '../../../src/worker/backends.js';
import { deserializeThrown, serializeThrown } from '../../../src/worker/errors.js';

const channels: MessageChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) {
    c.port1.close();
    c.port2.close();
  }
});

function connect() {
  const ch = new MessageChannel();
  channels.push(ch);
  const engine = exposeEngine(ch.port2 as never, { backends: { memory: memoryBackend() } });
  return { engine, client: StrataClient.connect(ch.port1 as never) };
}

it('round-trips the API over a MessagePort: transfer, progress, codes', async () => {
  const { client } = connect();
  const v = await client.createVolume({ backend: 'memory', path: 'p' }, { size: 1 << 20, blockSize: 4096 });
  const data = new Uint8Array(8192).fill(5);
  await v.write(4096, data);
  expect(data.buffer.byteLength).toBe(0);
  expect((await v.read(4096, 8192)).every((b) => b === 5)).toBe(true);
  const events: ProgressEvent[] = [];
  expect((await v.check({ onProgress: (e) => events.push(e) })).ok).toBe(true);
  expect(events).toEqual([{ done: 2, total: 2 }]);
  const e = await v.read(1 << 20, 1).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(StrataError);
  expect((e as StrataError).code).toBe('out-of-range');
  await expect(client.openVolume({ backend: 'idb', path: 'x' })).rejects.toMatchObject({ code: 'unsupported' });
  await client.close();
});

it('closing the client closes what it opened, not what another client opened', async () => {
  const ch = new MessageChannel();
  channels.push(ch);
  exposeEngine(ch.port2 as never, { backends: { memory: memoryBackend() } });
  const a = StrataClient.connect(ch.port1 as never);
  const b = StrataClient.connect(ch.port1 as never);
  const va = await a.createVolume({ backend: 'memory', path: 'a' }, { size: 1 << 20 });
  const vb = await b.createVolume({ backend: 'memory', path: 'b' }, { size: 1 << 20 });
  const snap = await va.snapshot('s').then(() => va.openSnapshot('s'));
  expect(snap.size).toBe(1 << 20);
  await a.close();
  await expect(va.read(0, 1)).rejects.toMatchObject({ code: 'closed' });
  await expect(snap.read(0, 1)).rejects.toMatchObject({ code: 'closed' });
  await expect(a.storage()).rejects.toMatchObject({ code: 'closed' });
  expect((await vb.read(0, 4)).length).toBe(4);
  // a's volume really was closed in the worker: its writer lock is free
  const again = await b.openVolume({ backend: 'memory', path: 'a' });
  await again.close();
  await b.close();
});

it('serialises errors with codes, other errors by name, and non-errors as values', () => {
  const s = serializeThrown(new StrataError('locked', 'busy'));
  expect(s).toMatchObject({ isError: true, value: { name: 'StrataError', code: 'locked', message: 'busy' } });
  const back = deserializeThrown(s) as StrataError;
  expect(back).toBeInstanceOf(StrataError);
  expect(back.code).toBe('locked');
  const t = deserializeThrown(serializeThrown(new TypeError('bad'))) as Error;
  expect(t).not.toBeInstanceOf(StrataError);
  expect([t.name, t.message]).toEqual(['TypeError', 'bad']);
  const dom = deserializeThrown({ isError: true, value: { name: 'QuotaExceededError', message: 'full' } }) as Error;
  expect(dom.name).toBe('QuotaExceededError');
  expect(deserializeThrown(serializeThrown(42))).toBe(42);
});
