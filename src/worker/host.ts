/**
 * Expose an {@link Engine} over a comlink Endpoint: `self` in a dedicated worker, or any
 * Endpoint you pass (Node's entry passes parentPort through ./node-endpoint.ts).
 */
import { expose, type Endpoint } from 'comlink';
import { StrataError } from '../errors.js';
import { Engine, type EngineOptions } from './engine.js';
import { holdAliveLock } from './alive-lock.js';
import { registerErrorTransfer } from './errors.js';
import { isHostMessage, type ReadyMessage } from './protocol.js';

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
  // Held while this worker lives; the handshake names it, so clients learn when it is gone.
  const alive = holdAliveLock();
  // Comlink answers every message on its endpoint, so it must not see our connect messages.
  expose(engine, withoutHostMessages(ep));
  ep.addEventListener('message', (ev) => {
    const data = (ev as MessageEvent).data;
    // A client's own channel: comlink closes it when the client releases its proxy. The ready
    // message is the handshake the client waits for (see ReadyMessage); comlink ignores it.
    if (isHostMessage(data)) {
      const port = data.port;
      expose(engine, port as unknown as Endpoint);
      void alive.then((name) => {
        const ready: ReadyMessage = name === undefined ? { type: 'stratadisk:ready' } : { type: 'stratadisk:ready', alive: name };
        port.postMessage(ready);
      });
    }
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
