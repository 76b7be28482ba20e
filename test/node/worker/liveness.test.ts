/**
 * A client never waits forever on a worker that is not serving (src/worker/liveness.ts), under
 * Node worker_threads: a worker that lives but never serves (what an empty worker bundle is),
 * one that throws while starting, and one terminated after it answered. The client runs from
 * source; the serving worker is the built dist/worker/entry-node.js (skipped without dist/).
 * The browser cases (404 script, Web Locks) are in test/e2e/package.test.ts.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { StrataClient } from '../../../src/worker/client.js';

const entryNode = fileURLToPath(new URL('../../../dist/worker/entry-node.js', import.meta.url));
const built = existsSync(entryNode);
if (!built) console.warn(`skipping the terminated-worker test: ${entryNode} is missing; run \`npm run build\` first`);

/** The calls below would never settle before the fix: a bounded test, not the 120 s default. */
const HANG = { timeout: 30_000 };

const workers: Worker[] = [];
function start(code: string): Worker {
  const w = new Worker(code, { eval: true });
  // The test looks at the client's errors; without a listener Node rethrows a worker's error here.
  w.on('error', () => {});
  workers.push(w);
  return w;
}

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const e = await p.then(
    () => new Error('resolved'),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(StrataError);
  return { code: (e as StrataError).code, message: (e as StrataError).message };
}

it('a worker that lives but never serves: calls reject with timeout once the handshake wait is over', HANG, async () => {
  // Listens (so it lives), but is not stratadisk/worker.
  const w = start("require('node:worker_threads').parentPort.on('message', () => {});");
  const client = StrataClient.connect(w, { readyTimeoutMs: 300 });
  const pending = client.listVolumes('memory');
  const ready = await codeOf(client.ready);
  expect(ready.code).toBe('timeout');
  expect(ready.message).toContain("import 'stratadisk/worker'");
  expect(await codeOf(pending)).toEqual(ready);
  expect((await codeOf(client.createVolume({ backend: 'memory', path: 'x' }, { size: 4096 }))).code).toBe('timeout');
  await client.close(); // nothing to close: not an error
});

it('a worker that throws while starting: calls reject with closed', HANG, async () => {
  const w = start("throw new Error('boom at start');");
  const client = StrataClient.connect(w);
  expect((await codeOf(client.listVolumes('memory'))).code).toBe('closed');
  expect((await codeOf(client.ready)).code).toBe('closed');
});

it.skipIf(!built)('a worker terminated after it answered: calls in flight and later ones reject with closed', HANG, async () => {
  const w = new Worker(entryNode);
  workers.push(w);
  const client = StrataClient.connect(w);
  await client.ready;
  const vol = await client.createVolume({ backend: 'memory', path: 'v' }, { size: 1 << 20 });
  await vol.write(0, new Uint8Array(512).fill(7));
  // Sent just before terminate(): the worker may still answer it, or die first; either way it settles.
  const inFlight = vol.read(0, 512).then(
    (bytes) => ({ answered: bytes.length }),
    (e: unknown) => ({ code: (e as StrataError).code }),
  );
  await w.terminate();
  expect([{ answered: 512 }, { code: 'closed' }]).toContainEqual(await inFlight);
  expect((await codeOf(vol.read(0, 512))).code).toBe('closed');
  expect((await codeOf(client.listVolumes('memory'))).code).toBe('closed');
  await client.close(); // the worker is gone: closing what it had is not an error
});

it('a serving worker answers the handshake', HANG, async () => {
  if (!built) return;
  const w = new Worker(entryNode);
  workers.push(w);
  const client = StrataClient.connect(w, { readyTimeoutMs: Infinity });
  await client.ready;
  expect(await client.listVolumes('memory')).toEqual([]);
  await client.close();
});
