/**
 * Same-thread transport: a pair of linked ends. Messages are delivered in order on a later
 * microtask (as a real channel would), by reference — a write's bytes are used by the host
 * before its reply, so the writer must not change them until the write resolves.
 */
import { LinkEnd, type Link } from './link.js';

export function localLinkPair<A = unknown, B = unknown>(): [Link<A>, Link<B>] {
  const ends = [new LinkEnd(), new LinkEnd()] as const;
  const make = (self: LinkEnd, other: LinkEnd): Link<never> => ({
    send(msg) {
      if (self.closed || other.closed) return;
      queueMicrotask(() => other.deliver(msg));
    },
    listen: (h) => self.listen(h),
    close() {
      if (self.end('closed')) queueMicrotask(() => other.end('the other end closed'));
    },
  });
  return [make(ends[0], ends[1]) as Link<A>, make(ends[1], ends[0]) as Link<B>];
}
