/**
 * `#worker-serve` under the `node` condition (package.json "imports"; ./entry.ts and
 * ./entry-node.ts import it for its effect): in a worker_threads worker, serve the engine
 * (memory, node-dir and remote backends) on `parentPort`. On the main thread it does nothing.
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import { nodeBackends } from './backends-node.js';
import { exposeEngine } from './host.js';
import { nodeEndpoint } from './node-endpoint.js';

if (!isMainThread && parentPort) {
  exposeEngine(nodeEndpoint(parentPort), { backends: await nodeBackends() });
}
