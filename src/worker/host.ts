/**
 * Expose an {@link Engine} over a comlink Endpoint: `self` in a dedicated worker, or any
 * Endpoint you pass (Node's entry passes parentPort through ./node-endpoint.ts).
 */
import { expose, type Endpoint } from 'comlink';
import { StrataError } from '../errors.js';
import { Engine, type EngineOptions } from './engine.js';
import { registerErrorTransfer } from './errors.js';
import { isHostMessage } from './protocol.js';

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
  // Comlink answers every message on its endpoint, so it must not see our connect messages.
  expose(engine, withoutHostMessages(ep));
  ep.addEventListener('message', (ev) => {
    const data = (ev as MessageEvent).data;
    // A client's own channel: comlink closes it when the client releases its proxy.
    if (isHostMessage(data)) expose(engine, data.port as unknown as Endpoint);
  });
  return engine;
}

/** `ep` as comlink sees it: the same, minus our HostMessages. */
function withoutHostMessages(ep: Endpoint): Endpoint {
  const filtered = new WeakMap<EventListenerOrEventListenerObject, EventListener>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => ep.postMessage(message, transfer),
    addEventListener: (type: string, listener: EventListenerOrEventListenerObject) => {
      const f: EventListener = (ev) => {
        if (isHostMessage((ev as MessageEvent).data)) return;
        if (typeof listener === 'function') listener(ev);
        else listener.handleEvent(ev);
      };
      filtered.set(listener, f);
      ep.addEventListener(type, f);
    },
    removeEventListener: (type: string, listener: EventListenerOrEventListenerObject) => {
      const f = filtered.get(listener);
      if (f) ep.removeEventListener(type, f);
    },
    ...(ep.start ? { start: () => ep.start!() } : {}),
  };
}

export { Engine, type EngineOptions } from './engine.js';
