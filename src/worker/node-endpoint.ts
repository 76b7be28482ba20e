/**
 * A comlink Endpoint over a Node `worker_threads` Worker or MessagePort (both are EventEmitters
 * whose 'message' listeners receive the data itself, not an event). Neutral code: no `node:`
 * import, so the client can carry it into any bundle. Same idea as comlink's node-adapter,
 * which its package does not export under a stable path.
 */
import type { Endpoint } from 'comlink';

/** The part of a Node Worker / MessagePort this adapter uses. */
export interface NodeMessageTarget {
  postMessage(message: unknown, transfer?: readonly unknown[]): void;
  on(type: 'message', listener: (data: unknown) => void): unknown;
  off(type: 'message', listener: (data: unknown) => void): unknown;
  start?: () => void;
}

export function isNodeMessageTarget(x: unknown): x is NodeMessageTarget {
  const o = x as Partial<NodeMessageTarget> & { addEventListener?: unknown };
  return typeof o === 'object' && o !== null && typeof o.on === 'function' && typeof o.off === 'function' && typeof o.postMessage === 'function' && typeof o.addEventListener !== 'function';
}

export function nodeEndpoint(target: NodeMessageTarget): Endpoint {
  const wrapped = new WeakMap<EventListenerOrEventListenerObject, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => target.postMessage(message, transfer),
    addEventListener: (_type: string, handler: EventListenerOrEventListenerObject) => {
      const listener = (data: unknown) => {
        const event = { data } as MessageEvent;
        if (typeof handler === 'function') handler(event);
        else handler.handleEvent(event);
      };
      wrapped.set(handler, listener);
      target.on('message', listener);
    },
    removeEventListener: (_type: string, handler: EventListenerOrEventListenerObject) => {
      const listener = wrapped.get(handler);
      if (!listener) return;
      target.off('message', listener);
      wrapped.delete(handler);
    },
    ...(target.start ? { start: () => target.start!() } : {}),
  };
}
