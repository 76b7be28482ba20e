/**
 * `stratadisk/edge`: the fetch handler that serves published versions (README.md, "Deploying the
 * edge worker"). Under workerd the package's `workerd` condition gives workerd.ts instead, whose
 * default export is the ready Workers module.
 */
export { createEdgeHandler, type EdgeHandler, type EdgeHandlerOptions } from './handler.js';
export { createEdgeWorker, type EdgeWorker, type EdgeWorkerOptions } from './worker.js';
export { createVersionCache, type VersionCacheOptions } from './version-cache.js';
export { decideRange, contentRange, unsatisfiedRange, type RangeDecision } from './range.js';
export { entityTag, evaluatePreconditions, rangeApplies, type Precondition } from './conditional.js';
export { parseRoute } from './route.js';
export type { CacheLike, OpenVersion, VersionRef, VersionSource, WaitUntil } from './source.js';
