/**
 * A passive shadow reader in a Node worker_threads worker (used by the shadow stress test and
 * benchmarks): opens the volume file and the shadow directory read-only, connects to the
 * writer over the transferred port, runs verifyLoop and posts the result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { ShadowReader } from '../shadow/reader.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { NodeFileStore } from '../store/node-file.js';
import { verifyLoop, type VerifyOptions } from './shadow-load.js';

export interface ShadowReaderWorkerData {
  volumePath: string;
  shadowDir: string;
  copy: string;
  mode: 'shared' | 'message';
  port: MessagePort;
  sums: BigUint64Array;
  verify: VerifyOptions;
  recheck: boolean;
}

const d = workerData as ShadowReaderWorkerData;
try {
  const volume = await NodeFileStore.open(d.volumePath, { readOnly: true });
  const reader = await ShadowReader.connect(d.port, { copy: d.copy, volume, areas: new NodeDirNamespace(d.shadowDir, { readOnly: true }), mode: d.mode, recheck: d.recheck });
  parentPort!.postMessage({ t: 'ready' });
  const r = await verifyLoop(reader, d.sums, d.verify);
  await reader.close();
  d.port.close();
  parentPort!.postMessage({ t: 'done', result: r });
} catch (e) {
  parentPort!.postMessage({ t: 'error', message: String(e), code: (e as { code?: string }).code });
}
