/**
 * Replica addresses (`tcp://`, `tls://`, `ws://`, `wss://`) and the rule that plain transport
 * stays on loopback. No Node imports: the WebSocket client uses it in browsers too.
 */
import { StrataError } from '../../errors.js';
import { isLoopback } from '../../util/loopback.js';

/** `host:port`, bracketing an IPv6 address. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host.replace(/^\[|\]$/g, '')}]` : host}:${port}`;
}

/** Refuse plain (unencrypted) transport beyond loopback: a listener (`server`) or a client. */
export function refusePlain(host: string, side: 'server' | 'client', secureScheme: string): void {
  if (isLoopback(host)) return;
  const risk = 'without TLS would let anyone on the network read and change the replicated data';
  throw new StrataError(
    'invalid-argument',
    side === 'server'
      ? `Listening for replication on ${host} ${risk}: give a certificate and key (TLS; clients then use ${secureScheme}://), or listen on a loopback address (127.0.0.1).`
      : `Replicating to ${host} ${risk}: use ${secureScheme}://${host}:PORT (the server needs a certificate), or a loopback address (127.0.0.1).`,
  );
}

/** Parse `scheme://host:port[/path]` for one of `schemes`; no credentials, query or fragment. */
export function parseReplicaUrl(url: string, schemes: readonly string[]): { scheme: string; host: string; port: number; path: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StrataError('invalid-argument', `'${url}' is not a replica URL; write ${schemes.map((s) => `${s}://HOST:PORT`).join(' or ')}.`);
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (!schemes.includes(scheme)) throw new StrataError('invalid-argument', `A replica URL starts with ${schemes.map((s) => `${s}://`).join(' or ')}, not ${scheme}://.`);
  if (u.username || u.password) throw new StrataError('invalid-argument', 'A replica URL must not carry credentials: give the token through the environment or a 0600 file.');
  if (u.search || u.hash) throw new StrataError('invalid-argument', `A replica URL has no query or fragment (the token goes in the environment or a 0600 file); write ${scheme}://HOST:PORT.`);
  const port = Number(u.port || (scheme === 'ws' ? 80 : scheme === 'wss' ? 443 : NaN));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new StrataError('invalid-argument', `The replica URL ${scheme}://${u.host} names no port; write ${scheme}://HOST:PORT.`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new StrataError('invalid-argument', `The replica URL '${url}' names no host.`);
  return { scheme, host, port, path: u.pathname || '/' };
}
