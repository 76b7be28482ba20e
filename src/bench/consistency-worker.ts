/**
 * A participant of the consistency benchmark in a worker_threads Worker: joins the group over
 * the port its parent hands it, then runs ledger transfers inside its write gate (or, `idle`, only
 * answers the protocol) until told to stop. Evaluated on the main thread it does nothing.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { joinFromParent } from '../consistency/worker-threads.js';
import { LedgerWriter } from './ledger.js';

if (!isMainThread && parentPort) {
  const port = parentPort;
  const { writer, idle } = workerData as { writer: number; idle?: boolean };
  let stop = false;
  port.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') stop = true;
  });
  const p = await joinFromParent({ name: `bench-${writer}` });
  await p.ready;
  const w = new LedgerWriter(writer, p.volume('a'), p.volume('b'));
  port.postMessage({ type: 'ready' });
  if (idle) await new Promise<void>((r) => port.on('message', (m: { type?: string }) => m?.type === 'stop' && r()));
  while (!stop) await p.gate.run(() => w.transfer());
  p.close();
  port.postMessage({ type: 'stopped', transfers: w.seq });
}
