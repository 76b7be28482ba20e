/**
 * MessagePort / Worker transport: a {@link Link} over anything with `postMessage` and message
 * events — a MessagePort, a Web Worker, a worker's own global scope, or a Node
 * `worker_threads` MessagePort (an EventEmitter that also emits `close` when the other side
 * goes). Bytes are structured-cloned (copied), so the sender keeps its buffers.
 *
 * Browsers give no reliable "closed" event for a port whose tab or worker died, which is why the
 * host also drops members whose heartbeats stop (GroupHost `deadAfterMs`).
 */
import { LinkEnd, type Link } from './link.js';

/** A DOM MessagePort, Worker or DedicatedWorkerGlobalScope. */
export interface DomPortLike {
  postMessage(message: unknown): void;
  addEventListener(type: 'message' | 'messageerror' | 'close', listener: (ev: Event) => void): void;
  removeEventListener(type: 'message' | 'messageerror' | 'close', listener: (ev: Event) => void): void;
  start?: () => void;
  close?: () => void;
}

/** A Node worker_threads MessagePort or Worker (EventEmitter). */
export interface NodePortLike {
  postMessage(message: unknown): void;
  on(type: string, listener: (...args: unknown[]) => void): unknown;
  off(type: string, listener: (...args: unknown[]) => void): unknown;
  close?: () => void;
}

function isNodePort(p: DomPortLike | NodePortLike): p is NodePortLike {
  return typeof (p as NodePortLike).on === 'function' && typeof (p as NodePortLike).off === 'function';
}

/**
 * A link over `port`. `closePort: true` (default for ports) closes the port when the link is
 * closed; pass false for a Worker or a global scope you do not want to close.
 */
export function portLink<Out = unknown>(port: DomPortLike | NodePortLike, options: { closePort?: boolean } = {}): Link<Out> {
  const end = new LinkEnd();
  let detach: () => void;
  if (isNodePort(port)) {
    const onMessage = (data: unknown) => end.deliver(data);
    const onClose = () => finish('the port closed');
    const onExit = (code: unknown) => finish(`the worker exited (code ${String(code)})`);
    const onError = (e: unknown) => finish(`the worker failed: ${e instanceof Error ? e.message : String(e)}`);
    port.on('message', onMessage);
    port.on('close', onClose);
    port.on('exit', onExit);
    port.on('error', onError);
    detach = () => {
      port.off('message', onMessage);
      port.off('close', onClose);
      port.off('exit', onExit);
      port.off('error', onError);
    };
  } else {
    const onMessage = (ev: Event) => end.deliver((ev as MessageEvent).data);
    const onBad = () => finish('a message could not be deserialised');
    const onClose = () => finish('the port closed');
    port.addEventListener('message', onMessage);
    port.addEventListener('messageerror', onBad);
    port.addEventListener('close', onClose);
    port.start?.();
    detach = () => {
      port.removeEventListener('message', onMessage);
      port.removeEventListener('messageerror', onBad);
      port.removeEventListener('close', onClose);
    };
  }
  const closePort = options.closePort ?? true;
  function finish(reason: string): void {
    if (!end.end(reason)) return;
    detach();
    if (closePort) port.close?.();
  }
  return {
    send(msg) {
      if (end.closed) return;
      try {
        port.postMessage(msg);
      } catch (e) {
        finish(`sending failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    },
    listen: (h) => end.listen(h),
    close: () => finish('closed'),
  };
}
