/**
 * `stratadisk/worker` under Node worker_threads: serve the engine (memory and node-dir backends)
 * on `parentPort`. Evaluated on the main thread it does nothing. Spawn it with
 * `new Worker(new URL('stratadisk/dist/worker/entry-node.js', ...))` or via entry.js, which
 * forwards here under Node.
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import { nodeBackends } from './backends-node.js';
import { exposeEngine } from './host.js';
import { nodeEndpoint } from './node-endpoint.js';

export { exposeEngine, Engine, type EngineOptions } from './host.js';
export { nodeEndpoint } from './node-endpoint.js';

if (!isMainThread && parentPort) {
  exposeEngine(nodeEndpoint(parentPort), { backends: await nodeBackends() });
}
