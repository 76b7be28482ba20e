/**
 * `stratadisk/worker`: the worker host. Evaluated as a dedicated Web Worker it serves the engine
 * on `self` (memory, OPFS and IndexedDB backends):
 *
 * ```ts
 * const worker = new Worker(new URL('stratadisk/worker', import.meta.url), { type: 'module' });
 * const client = StrataClient.connect(worker); // from 'stratadisk/client'
 * ```
 *
 * Under Node worker_threads it serves on `parentPort` (adds the node-dir backend). Which of the
 * two is `#worker-serve`, chosen by the package's "imports" conditions (`node`: ./serve-node.ts;
 * `browser` and default: ./serve-browser.ts), so no `node:` module reaches a browser bundle and
 * nothing is sniffed at run time. Evaluated anywhere else (a page, Node's main thread) it does
 * nothing but export.
 *
 * This module is imported for its effect: package.json lists it, entry-node.js and the serve-*
 * files under `sideEffects`, so a bundler keeps `import 'stratadisk/worker'` in a worker file.
 * The browser side has no top-level `await`, so it bundles as an ES module worker and as a
 * classic (iife) one alike.
 */
import '#worker-serve';

export { exposeEngine, Engine, type EngineOptions } from './host.js';
export { registerErrorTransfer } from './errors.js';
export type * from './protocol.js';
