/**
 * Node: a replica URL to a Link (src/replication/links/): `tcp://HOST:PORT` (loopback only),
 * `tls://HOST:PORT`, `ws://HOST:PORT[/path]` (loopback only) and `wss://HOST:PORT[/path]`. Every
 * link proves the shared token both ways before this resolves; a CA (PEM) verifies the server's
 * certificate for tls:// and wss:// (default: the system's).
 */
import { StrataError } from '../errors.js';
import type { Link } from '../consistency/link.js';
import { connectReplicaTcp } from './links/tcp.js';
import { connectReplicaWs } from './links/websocket.js';
import type { ToSecondary } from './protocol.js';

export const REPLICA_SCHEMES = ['tcp', 'tls', 'ws', 'wss'] as const;

export interface DialOptions {
  token: string;
  /** PEM CA certificate(s) for tls:// and wss:// */
  ca?: string | Buffer;
  connectTimeoutMs?: number;
}

/** The scheme of a replica URL, or `invalid-argument` naming the ones we speak. */
export function replicaScheme(url: string): (typeof REPLICA_SCHEMES)[number] {
  const m = /^([a-z]+):\/\//i.exec(url);
  const scheme = m?.[1]?.toLowerCase();
  if (!scheme || !(REPLICA_SCHEMES as readonly string[]).includes(scheme)) {
    throw new StrataError('invalid-argument', `'${url.slice(0, 200)}' is not a replica URL: write tcp://HOST:PORT (loopback), tls://HOST:PORT, ws://HOST:PORT/replica (loopback) or wss://HOST:PORT/replica, as \`stratadisk serve-replica\` prints it.`);
  }
  return scheme as (typeof REPLICA_SCHEMES)[number];
}

/** Connect and authenticate to the replica server at `url`. */
export async function dialReplica(url: string, options: DialOptions): Promise<Link<ToSecondary>> {
  const scheme = replicaScheme(url);
  const common = { token: options.token, ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}) };
  if (scheme === 'tcp' || scheme === 'tls') return connectReplicaTcp<ToSecondary>(url, { ...common, ...(options.ca !== undefined ? { ca: options.ca } : {}) });
  return connectReplicaWs<ToSecondary>(url, { ...common, ...(options.ca !== undefined ? { ca: options.ca } : {}) });
}
