/**
 * Whether the worker behind a StrataClient is alive, so that no call waits forever. Comlink has
 * no liveness check: a call to a worker that never started, failed to load or died simply never
 * settles. This watches what the platform reports and turns it into StrataErrors:
 *
 * - the handshake: the host answers a client's connect with a ReadyMessage on the client's
 *   channel; without it within `readyTimeoutMs` (an empty worker script, a wrong one, one still
 *   loading) every pending and later call rejects with `timeout`;
 * - after the handshake, the worker's alive lock (./alive-lock.ts): granted to the client when
 *   the worker is gone (terminated, crashed) in a browser with Web Locks;
 * - a Web Worker's `error` event (its script did not load, threw while starting, or threw an
 *   uncaught error later: its state is unknown), a Node Worker's `exit`, and the channel's
 *   `close` (Node): every pending and later call rejects with `closed`;
 * - `messageerror` (a message that could not be deserialised, so some answer is lost): the calls
 *   pending at that moment reject with `io`; later calls go on.
 *
 * Not detected: a worker that stops answering but lives (an endless loop), and, without Web
 * Locks (plain http, not localhost), a browser worker terminated after the handshake.
 */
import { StrataError } from '../errors.js';
import { watchAliveLock } from './alive-lock.js';
import { isReadyMessage } from './protocol.js';

/** How long a client waits for the worker's handshake by default. */
export const DEFAULT_READY_TIMEOUT_MS = 30_000;

/** The events of a Web Worker / MessagePort (EventTarget) or a Node Worker / port (EventEmitter). */
interface Listenable {
  addEventListener?: (type: string, listener: (ev: Event) => void) => void;
  removeEventListener?: (type: string, listener: (ev: Event) => void) => void;
  on?: (type: string, listener: (...args: unknown[]) => void) => unknown;
  off?: (type: string, listener: (...args: unknown[]) => void) => unknown;
}

export interface ConnectOptions {
  /** ms to wait for the handshake; `Infinity` waits forever (the old behaviour) */
  readyTimeoutMs?: number;
}

export class Liveness {
  /** Resolves on the handshake; rejects with the failure when the worker fails before it. */
  readonly ready: Promise<void>;
  private failure: StrataError | undefined;
  private readonly pending = new Set<(e: StrataError) => void>();
  private readonly unlisten: (() => void)[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private handshakeDone = false;
  private settleReady!: { resolve: () => void; reject: (e: StrataError) => void };

  /** `port`: the client's end of its channel; `worker`: what the client connected to. */
  constructor(port: MessagePort, worker: unknown, options: ConnectOptions = {}) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    // Nobody has to await `ready`: a failure also reaches every call.
    this.ready.catch(() => {});

    this.listen(port, 'message', (data: unknown) => {
      if (isReadyMessage(data)) this.handshake(data.alive);
    });
    // Node reports a channel whose other end went away (the worker thread ended).
    this.listen(port, 'close', () => this.fail(gone()));
    this.listen(port, 'messageerror', () => this.messageError());
    port.start();

    if (worker !== port && typeof worker === 'object' && worker !== null) {
      this.listen(worker, 'error', (ev: unknown) => this.fail(workerFailed(ev)));
      this.listen(worker, 'messageerror', () => this.messageError());
      // Node: a worker thread that ended (an uncaught error ends it too).
      this.listen(worker, 'exit', (code: unknown) => this.fail(new StrataError('closed', `The stratadisk worker thread exited (code ${String(code)}). Start a new Worker and connect again.`)));
    }

    const ms = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    if (Number.isFinite(ms)) {
      this.timer = setTimeout(() => this.fail(noHandshake(ms)), Math.max(0, ms));
      // Under Node the wait alone must not keep the process alive.
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  /** The failure that ended this worker connection, if any. */
  get failed(): StrataError | undefined {
    return this.failure;
  }

  /** `call()`'s promise, rejected instead when the worker fails first; not sent at all once failed. */
  guard<R>(call: () => Promise<R>): Promise<R> {
    if (this.failure) return Promise.reject(this.failure);
    const p = call();
    return new Promise<R>((resolve, reject) => {
      this.pending.add(reject);
      p.then(
        (v) => {
          this.pending.delete(reject);
          resolve(v);
        },
        (e: unknown) => {
          this.pending.delete(reject);
          reject(e);
        },
      );
    });
  }

  /** Stop watching (the client is closed). Pending calls keep their own fate. */
  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const off of this.unlisten.splice(0)) off();
  }

  private handshake(alive: string | undefined): void {
    if (this.failure || this.handshakeDone) return;
    this.handshakeDone = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (alive !== undefined) {
      const stop = watchAliveLock(alive, () => this.fail(gone()));
      this.unlisten.push(stop);
    }
    this.settleReady.resolve();
  }

  private fail(e: StrataError): void {
    if (this.failure) return;
    this.failure = e;
    this.settleReady.reject(e);
    this.dispose();
    this.rejectPending(e);
  }

  private messageError(): void {
    this.rejectPending(new StrataError('io', 'A message from the stratadisk worker could not be read (messageerror), so the calls that were waiting lost their answer; their outcome is unknown. Read back what they were to change.'));
  }

  private rejectPending(e: StrataError): void {
    const rejects = [...this.pending];
    this.pending.clear();
    for (const reject of rejects) reject(e);
  }

  /** Listen on an EventTarget (handler gets `ev.data` for messages) or an EventEmitter (gets the first argument). */
  private listen(source: unknown, type: string, handler: (value: unknown) => void): void {
    const s = source as Listenable;
    if (typeof s.addEventListener === 'function' && typeof s.removeEventListener === 'function') {
      const l = (ev: Event) => handler(type === 'message' ? (ev as MessageEvent).data : ev);
      s.addEventListener(type, l);
      this.unlisten.push(() => s.removeEventListener!(type, l));
    } else if (typeof s.on === 'function' && typeof s.off === 'function') {
      // An EventEmitter: never listen for 'error' there (a listener would swallow the
      // uncaught error Node otherwise rethrows on the main thread); 'exit' follows it anyway.
      if (type === 'error') return;
      const l = (...args: unknown[]) => handler(args[0]);
      s.on(type, l);
      this.unlisten.push(() => s.off!(type, l));
    }
  }
}

function gone(): StrataError {
  return new StrataError('closed', 'The stratadisk worker is gone (terminated, crashed or its thread ended). Start a new Worker and connect again.');
}

function noHandshake(ms: number): StrataError {
  return new StrataError(
    'timeout',
    `The stratadisk worker did not answer within ${ms / 1000} s. Check that the worker script runs \`import 'stratadisk/worker'\` and is not empty in your build, ` +
      "that it loads (the browser's network tab and console), and that the page passed that worker to StrataClient.connect; " +
      'to wait longer, pass { readyTimeoutMs } to StrataClient.connect.',
  );
}

function workerFailed(ev: unknown): StrataError {
  const message = typeof (ev as { message?: unknown }).message === 'string' ? (ev as ErrorEvent).message : '';
  const what = message
    ? `threw an uncaught error: ${message}`
    : 'failed to load (its script could not be fetched or evaluated: check its URL, the network tab and the console)';
  return new StrataError('closed', `The stratadisk worker ${what}. Its state is unknown: terminate it, start a new Worker and connect again.`);
}

/**
 * `remote` with every method call guarded by `liveness` (see {@link Liveness.guard}). Only calls
 * of string-named members are guarded; symbols (comlink's releaseProxy) pass through, and `then`
 * is not a method here (nobody awaits the engine proxy itself).
 */
export function guardedRemote<T extends object>(remote: T, liveness: Liveness): T {
  return new Proxy(remote, {
    get(target, prop) {
      const member = Reflect.get(target, prop) as unknown;
      if (typeof prop !== 'string' || prop === 'then' || typeof member !== 'function') return member;
      return (...args: unknown[]) => liveness.guard(() => (member as (...a: unknown[]) => Promise<unknown>)(...args));
    },
  });
}
