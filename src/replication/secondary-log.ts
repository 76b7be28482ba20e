/**
 * What a secondary server logs of a session: a Link wrapper that looks at the primary's
 * control messages (hello, resync begin and end, stop) on their way to the Secondary, and at how
 * the connection ended. It changes nothing that crosses.
 */
import type { Link } from '../consistency/link.js';
import type { ToPrimary } from './protocol.js';
import type { Secondary } from './secondary.js';

export function watchSecondaryLink(link: Link, secondary: Secondary, log: (line: string) => void): Link<ToPrimary> {
  let session = '?';
  let ended = false;
  const peek = (m: unknown) => {
    if (typeof m !== 'object' || m === null) return;
    const o = m as Record<string, unknown>;
    switch (o.t) {
      case 'hello':
        if (typeof o.session === 'string') session = o.session.slice(0, 80);
        log(`session ${session}: ${o.mode === 'async' ? 'asynchronous' : 'synchronous'} replication begins`);
        return;
      case 'sync-begin':
        if (typeof o.blocks === 'number' && o.blocks > 0) log(`session ${session}: resync begins (${o.blocks} blocks); the last consistent state is kept until it ends`);
        return;
      case 'sync-end':
        log(`session ${session}: resync complete; in sync`);
        return;
      case 'stop':
        log(`session ${session}: the primary stopped the session: ${typeof o.reason === 'string' ? o.reason.slice(0, 300) : '?'}`);
        return;
    }
  };
  return {
    send: (m: ToPrimary) => {
      if (m.t === 'refuse' || m.t === 'err') log(`session ${session}: ${m.t === 'refuse' ? 'refused' : 'failed'}: ${m.code}: ${m.message}`);
      link.send(m);
    },
    listen: (h) =>
      link.listen({
        message: (m) => {
          peek(m);
          h.message(m);
        },
        close: (reason) => {
          h.close(reason);
          if (ended) return;
          ended = true;
          log(`session ${session}: ended (${secondary.lastEnd ?? reason}); applied writes are flushed`);
        },
      }),
    close: () => link.close(),
  };
}
