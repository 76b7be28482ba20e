/**
 * `stratadisk/worker` under Node (the package's `node` export condition): serve the engine
 * (memory and node-dir backends) on `parentPort` in a worker_threads worker (./serve-node.ts);
 * on the main thread it does nothing. Spawn it with
 * `new Worker(new URL('stratadisk/dist/worker/entry-node.js', ...))`, or entry.js, which under
 * Node's conditions imports the same ./serve-node.js. Exports what entry.ts does, plus
 * nodeEndpoint.
 */
import './serve-node.js';

export * from './entry.js';
export { nodeEndpoint } from './node-endpoint.js';
