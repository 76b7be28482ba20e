/**
 * Expose an {@link Engine} over a comlink Endpoint: `self` in a dedicated worker, or any
 * Endpoint you pass (Node's entry passes parentPort through ./node-endpoint.ts).
 */
import { expose, type Endpoint } from 'comlink';
import { StrataError } from '../errors.js';
import { Engine, type EngineOptions } from './engine.js';
import { registerErrorTransfer } from './errors.js';

/**
 * Serve an engine on `endpoint` (default: the dedicated worker's global scope). Returns the
 * engine, e.g. to close its volumes from inside the worker.
 */
export function exposeEngine(endpoint?: Endpoint, options: EngineOptions = {}): Engine {
  registerErrorTransfer();
  const ep = endpoint ?? (globalThis as { self?: Endpoint }).self;
  if (!ep || typeof ep.postMessage !== 'function') {
    throw new StrataError('unsupported', 'exposeEngine() needs an endpoint outside a dedicated worker; under Node worker_threads import stratadisk/worker (entry-node) or pass nodeEndpoint(parentPort).');
  }
  const engine = new Engine(options);
  expose(engine, ep);
  return engine;
}

export { Engine, type EngineOptions } from './engine.js';
