/**
 * Wire types between a shadow volume's writer and its passive readers, and a tiny endpoint
 * adapter so the same protocol runs over a browser MessagePort/Worker, a Node worker_threads
 * port, or a child process's IPC channel (serialization 'advanced' keeps typed arrays).
 *
 * Guarantee without shared memory: every `pub` (bits + where the blocks are) and `chain`
 * message is posted before the writer writes the volume; a reader that has read the volume
 * sends `sync` and waits for `synced`. The writer answers after everything it posted before,
 * and one channel delivers in order, so the reader has then seen every bit published before
 * its volume read: its re-check is as strong as an Atomics.load of a shared bitmap.
 */
import type { AreaState } from './catalog.js';
import type { ErrorCode } from '../errors.js';

export interface ChainEntry {
  /** small number naming the area in `pub` messages (per writer session) */
  slot: number;
  id: string;
  name: string;
  /** store name of the diff area in the shadow namespace */
  store: string;
  state: AreaState;
  /** log offset up to which records are published (read them from the store) */
  end: number;
  /** the shared bitmap (shared-memory readers only) */
  bits: SharedArrayBuffer | null;
}

export type WriterMessage =
  | { t: 'welcome'; rid: number; blockSize: number; volumeSize: number; chain: ChainEntry[]; control: SharedArrayBuffer | null; gen: number }
  | { t: 'refused'; rid: number; code: ErrorCode; message: string }
  | { t: 'chain'; chain: ChainEntry[]; gen: number }
  /** runs: flat (start, count, byteOffset)* of blocks now preserved in area `slot` */
  | { t: 'pub'; slot: number; runs: Float64Array }
  | { t: 'synced'; rid: number }
  | { t: 'closed' };

export type ReaderMessage =
  | { t: 'hello'; rid: number; copy: string; shared: boolean }
  | { t: 'sync'; rid: number }
  | { t: 'bye' };

/** Anything messages can be posted to and received from. */
export interface ShadowEndpoint {
  post(message: unknown, transfer?: Transferable[]): void;
  /** Subscribe; returns the unsubscribe function. */
  listen(fn: (message: unknown) => void): () => void;
}

interface DomLike {
  postMessage(m: unknown, transfer?: Transferable[]): void;
  addEventListener(t: 'message', fn: (e: MessageEvent) => void): void;
  removeEventListener(t: 'message', fn: (e: MessageEvent) => void): void;
  start?: () => void;
}
interface NodePortLike {
  postMessage(m: unknown, transfer?: readonly unknown[]): void;
  on(t: 'message', fn: (m: unknown) => void): unknown;
  off(t: 'message', fn: (m: unknown) => void): unknown;
}
interface IpcLike {
  send?(m: unknown, handle?: undefined, options?: undefined, callback?: (e: Error | null) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Node's `process` types its listeners loosely
  on(t: 'message', fn: (m: any, ...rest: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(t: 'message', fn: (m: any, ...rest: any[]) => void): unknown;
}

/**
 * Adapt a MessagePort/Worker (DOM), a worker_threads MessagePort/Worker, or a ChildProcess /
 * `process` (IPC) to a ShadowEndpoint.
 */
export function toEndpoint(target: DomLike | NodePortLike | IpcLike | ShadowEndpoint): ShadowEndpoint {
  const t = target as Partial<DomLike & NodePortLike & IpcLike & ShadowEndpoint>;
  if (typeof t.post === 'function' && typeof t.listen === 'function') return target as ShadowEndpoint;
  if (typeof t.postMessage === 'function' && typeof t.on === 'function' && typeof t.addEventListener !== 'function') {
    const p = target as NodePortLike;
    return {
      post: (m, transfer) => p.postMessage(m, transfer),
      listen: (fn) => {
        p.on('message', fn);
        return () => void p.off('message', fn);
      },
    };
  }
  if (typeof t.postMessage === 'function' && typeof t.addEventListener === 'function') {
    const d = target as DomLike;
    return {
      post: (m, transfer) => d.postMessage(m, transfer ?? []),
      listen: (fn) => {
        const h = (e: MessageEvent): void => fn(e.data);
        d.addEventListener('message', h);
        d.start?.();
        return () => d.removeEventListener('message', h);
      },
    };
  }
  if (typeof t.send === 'function' && typeof t.on === 'function') {
    const c = target as IpcLike;
    return {
      // With a callback, a failed send (the other process died: EPIPE, channel closed) is reported
      // there instead of as an 'error' event, which nobody listens to and which would crash the
      // process. A reader that is gone needs no more messages; the writer goes on.
      post: (m) => void c.send!(m, undefined, undefined, ignoreSendError),
      listen: (fn) => {
        c.on('message', fn);
        return () => void c.off('message', fn);
      },
    };
  }
  throw new TypeError('Not a message endpoint: pass a MessagePort, Worker, worker_threads port, or a child process.');
}

/** A message to a process that is gone is dropped (see toEndpoint). */
function ignoreSendError(): void {}
