/**
 * `stratadisk/worker`: the worker host. Evaluated as a dedicated Web Worker it serves the engine
 * on `self` (memory, OPFS and IndexedDB backends):
 *
 * ```ts
 * const worker = new Worker(new URL('stratadisk/worker', import.meta.url), { type: 'module' });
 * const client = StrataClient.connect(worker); // from 'stratadisk/client'
 * ```
 *
 * Under Node worker_threads it forwards to ./entry-node.js (adds the node-dir backend). That
 * import is computed and marked `@vite-ignore`, so a browser bundler never follows it and no
 * `node:` module reaches a browser bundle. Evaluated anywhere else (a page, Node's main thread)
 * it does nothing but export.
 *
 * This module is imported for its effect: package.json lists it (and entry-node.js) under
 * `sideEffects`, so a bundler keeps `import 'stratadisk/worker'` in a worker file. It has no
 * top-level `await`, so it bundles as an ES module worker and as a classic (iife) one alike.
 */
import { exposeEngine } from './host.js';

export { exposeEngine, Engine, type EngineOptions } from './host.js';
export { registerErrorTransfer } from './errors.js';
export type * from './protocol.js';

declare const WorkerGlobalScope: { prototype: object } | undefined;

const inBrowserWorker =
  typeof WorkerGlobalScope !== 'undefined' && typeof self !== 'undefined' && self instanceof (WorkerGlobalScope as unknown as typeof Object) &&
  // Shared and service workers have no single owner to talk to.
  typeof (self as unknown as { postMessage?: unknown }).postMessage === 'function';
const inNode = !inBrowserWorker && typeof process !== 'undefined' && typeof process.versions?.node === 'string';

if (inBrowserWorker) {
  exposeEngine();
} else if (inNode) {
  // Not awaited: a top-level `await` here would make this module unbundleable as a classic
  // (iife) worker, Vite's default worker format. Node queues what the client posts on
  // parentPort until entry-node.js listens, and a failed import is an unhandled rejection,
  // which ends the worker thread (the client's calls then reject with `closed`).
  const nodeEntry = './entry-node.js';
  void import(/* @vite-ignore */ nodeEntry);
}
