/**
 * What every network link goes through before it is handed over: the token handshake
 * (./auth.ts), then heartbeats (./heartbeat.ts). Shared by the TCP, TLS and WebSocket links.
 */
import type { Clock, Link } from '../../consistency/link.js';
import { authenticateLink, type AuthRole } from './auth.js';
import { heartbeatLink } from './heartbeat.js';

export interface LinkSecurityOptions {
  /** the shared token (from the environment or a 0600 file; never argv) */
  token: string;
  /** time for the token handshake (default 10 s) */
  authTimeoutMs?: number;
  /** a heartbeat is sent this often (default 1 s) */
  heartbeatMs?: number;
  /** the link closes after this long without hearing from the peer (default 5 s) */
  deadAfterMs?: number;
  /** what the token is for; both sides must agree (default 'stratadisk-replication') */
  purpose?: string;
  clock?: Clock;
}

/** Authenticate `raw` as `role`, then add heartbeats. Rejects (closing `raw`) on failure. */
export async function secureLink<Out = unknown>(raw: Link, role: AuthRole, options: LinkSecurityOptions, onVerified?: () => void): Promise<Link<Out>> {
  const authed = await authenticateLink(raw, { token: options.token, role, timeoutMs: options.authTimeoutMs, purpose: options.purpose, clock: options.clock, onVerified });
  return heartbeatLink<Out>(authed, { intervalMs: options.heartbeatMs, deadAfterMs: options.deadAfterMs, clock: options.clock });
}

/** Bytes a peer may send before its proof checks out: the handshake needs a few hundred. */
export const PRE_AUTH_BYTES = 16 << 10;

/** `link`, kept in `links` until it closes (a server closes what it handed over when it stops). */
export function trackedLink(link: Link, links: Set<Link>): Link {
  const tracked: Link = {
    send: (m) => link.send(m),
    listen: (h) =>
      link.listen({
        message: h.message,
        close: (reason) => {
          links.delete(tracked);
          h.close(reason);
        },
      }),
    close: () => {
      links.delete(tracked);
      link.close();
    },
  };
  links.add(tracked);
  return tracked;
}
