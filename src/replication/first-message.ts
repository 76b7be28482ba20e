/**
 * One listener, two protocols: a replica server tells a replication primary from a resync
 * client by the first message that crosses an authenticated link (a primary's `hello` carries
 * `v`, a resync client's `hello` carries `protocol`, see src/resync/protocol.ts). `routeByFirstMessage`
 * waits for that message, hands it to `route` with a link that replays it to whoever listens
 * next, and loses nothing that arrives meanwhile.
 */
import type { Link, LinkHandlers } from '../consistency/link.js';

/** Is `m` the first message of a resync client (src/resync/remote.ts `remoteSide`)? */
export function isResyncHello(m: unknown): boolean {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  const o = m as Record<string, unknown>;
  return o.t === 'hello' && typeof o.protocol === 'string';
}

/**
 * Call `route(first, replay)` when `link`'s first message arrives; `replay` delivers that message
 * and everything after it to its listener. `closedEarly` hears a link that closed before any.
 */
export function routeByFirstMessage(link: Link, route: (first: unknown, replay: Link) => void, closedEarly?: (reason: string) => void): void {
  let handlers: LinkHandlers | null = null;
  let routed = false;
  let queue: unknown[] = [];
  let closedReason: string | null = null;
  const replay: Link = {
    send: (m) => link.send(m),
    close: () => link.close(),
    listen(h) {
      handlers = h;
      const q = queue;
      queue = [];
      for (const m of q) h.message(m);
      if (closedReason !== null) h.close(closedReason);
    },
  };
  link.listen({
    message(m) {
      if (handlers) return handlers.message(m);
      queue.push(m);
      if (!routed) {
        routed = true;
        route(m, replay);
      }
    },
    close(reason) {
      if (handlers) return handlers.close(reason);
      closedReason = reason;
      if (!routed) closedEarly?.(reason);
    },
  });
}
