/**
 * `#worker-serve` for browsers and by default (package.json "imports"; ./entry.ts imports it for
 * its effect): evaluated as a dedicated Web Worker, serve the engine on `self` (memory, OPFS,
 * IndexedDB and remote backends). Anywhere else (a page; a shared or service worker, which has
 * no single owner to talk to) it does nothing. No `node:` import and no top-level `await`, so it
 * bundles as an ES module worker and as a classic (iife) one alike.
 */
import { exposeEngine } from './host.js';

declare const WorkerGlobalScope: { prototype: object } | undefined;

const inDedicatedWorker =
  typeof WorkerGlobalScope !== 'undefined' && typeof self !== 'undefined' && self instanceof (WorkerGlobalScope as unknown as typeof Object) &&
  typeof (self as unknown as { postMessage?: unknown }).postMessage === 'function';

if (inDedicatedWorker) exposeEngine();
