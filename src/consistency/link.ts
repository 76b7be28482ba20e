/**
 * What the protocol needs from a transport, and from time. Each transport file (local,
 * message-port, broadcast-channel, worker-threads, node-socket) turns its channel into a
 * {@link Link}; the coordinator and participants never see the transport. Time goes through a
 * {@link Clock} so the state machine can be tested with a fake one.
 */

/** Handlers a link delivers to. Messages arrive as `unknown`: the receiver validates them. */
export interface LinkHandlers {
  message(msg: unknown): void;
  /** The other side is gone (port closed, process exited, socket closed) or the link was closed. Called once. */
  close(reason: string): void;
}

/**
 * One bidirectional, ordered connection between a member and the group's host. `send` never
 * throws for a closed link (messages to a dead peer are dropped; its death is reported by
 * `close`). `listen` is called once; messages that arrive before it are queued.
 */
export interface Link<Out = unknown> {
  send(msg: Out): void;
  listen(handlers: LinkHandlers): void;
  /** Close this end; the other end's `close` handler fires. Idempotent. */
  close(): void;
}

export type TimerHandle = unknown;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Wall-clock time with the platform's timers. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Helper for transports: holds messages until `listen` is called, reports close once.
 */
export class LinkEnd {
  private handlers: LinkHandlers | undefined;
  private queue: unknown[] = [];
  private closedReason: string | undefined;
  closed = false;

  listen(handlers: LinkHandlers): void {
    this.handlers = handlers;
    const q = this.queue;
    this.queue = [];
    for (const m of q) handlers.message(m);
    if (this.closedReason !== undefined) handlers.close(this.closedReason);
  }

  deliver(msg: unknown): void {
    if (this.closed) return;
    if (this.handlers) this.handlers.message(msg);
    else this.queue.push(msg);
  }

  /** Mark closed and tell the listener (once). Returns false when it was already closed. */
  end(reason: string): boolean {
    if (this.closed) return false;
    this.closed = true;
    if (this.handlers) this.handlers.close(reason);
    else this.closedReason = reason;
    return true;
  }
}
