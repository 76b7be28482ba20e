/**
 * Every kind of replication link, as a connected pair (a: the client/connecting end, b: the
 * server/accepting end), for the conformance suite and the other link tests.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { authenticateLink } from '../../../../src/replication/links/auth.js';
import { broadcastLink } from '../../../../src/replication/links/broadcast.js';
import { localLinkPair } from '../../../../src/consistency/local.js';
import type { Link } from '../../../../src/consistency/link.js';
import { connectReplicaTcp, listenReplicaTcp, type ReplicaServer } from '../../../../src/replication/links/tcp.js';
import { connectReplicaWs } from '../../../../src/replication/links/websocket.js';
import { listenReplicaWs } from '../../../../src/replication/links/websocket-server.js';
import { makeTestTls, type TestTls } from '../../helpers/tls-certs.js';

export interface Pair {
  a: Link<object>;
  b: Link<object>;
  done(): Promise<void>;
}

export const TOKEN = randomBytes(24).toString('base64url');

/** Generous limits: a loaded machine must never close a live link in these tests. */
export const SLOW = { heartbeatMs: 1000, deadAfterMs: 120_000, authTimeoutMs: 60_000 };

let tls: TestTls | undefined;
export function testTls(): TestTls {
  tls ??= makeTestTls();
  return tls;
}
export function dropTestTls(): void {
  if (tls) rmSync(tls.dir, { recursive: true, force: true });
  tls = undefined;
}

export function serverTls(t = testTls()): { cert: string; key: string } {
  return { cert: readFileSync(t.serverCert, 'utf8'), key: readFileSync(t.serverKey, 'utf8') };
}

async function viaServer(listen: (onLink: (l: Link) => void) => Promise<ReplicaServer>, connect: (url: string) => Promise<Link>): Promise<Pair> {
  let got!: (l: Link) => void;
  const accepted = new Promise<Link>((r) => (got = r));
  const server = await listen((l) => got(l));
  const a = await connect(server.url);
  const b = await accepted;
  return { a: a as Link<object>, b: b as Link<object>, done: () => server.close() };
}

export const KINDS: Record<string, () => Promise<Pair>> = {
  'local pair with auth': async () => {
    const [x, y] = localLinkPair();
    const [a, b] = await Promise.all([authenticateLink<object>(x, { token: TOKEN, role: 'client' }), authenticateLink<object>(y, { token: TOKEN, role: 'server' })]);
    return { a, b, done: async () => {} };
  },
  tcp: () => viaServer((onLink) => listenReplicaTcp({ token: TOKEN, ...SLOW, onLink }), (url) => connectReplicaTcp(url, { token: TOKEN, ...SLOW })),
  tls: () =>
    viaServer(
      (onLink) => listenReplicaTcp({ token: TOKEN, ...SLOW, tls: serverTls(), onLink }),
      (url) => connectReplicaTcp(url, { token: TOKEN, ...SLOW, ca: readFileSync(testTls().caCert) }),
    ),
  websocket: () => viaServer((onLink) => listenReplicaWs({ token: TOKEN, ...SLOW, onLink }), (url) => connectReplicaWs(url, { token: TOKEN, ...SLOW })),
  'websocket tls': () =>
    viaServer(
      (onLink) => listenReplicaWs({ token: TOKEN, ...SLOW, tls: serverTls(), onLink }),
      (url) => connectReplicaWs(url, { token: TOKEN, ...SLOW, ca: readFileSync(testTls().caCert, 'utf8') }),
    ),
  broadcast: async () => {
    const name = `test:${randomBytes(8).toString('hex')}`;
    const opts = { heartbeatMs: SLOW.heartbeatMs, deadAfterMs: SLOW.deadAfterMs, connectTimeoutMs: 60_000 };
    const [a, b] = await Promise.all([broadcastLink<object>(name, { self: 'a', peer: 'b', ...opts }), broadcastLink<object>(name, { self: 'b', peer: 'a', ...opts })]);
    return { a, b, done: async () => {} };
  },
};

/** Collects what a link delivers. */
export class Inbox {
  readonly messages: Record<string, unknown>[] = [];
  readonly closes: string[] = [];
  private waiters: (() => void)[] = [];

  constructor(link: Link<object>) {
    link.listen({
      message: (m) => {
        this.messages.push(m as Record<string, unknown>);
        this.wake();
      },
      close: (r) => {
        this.closes.push(r);
        this.wake();
      },
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `pred` holds (checked on every event). */
  until(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => (pred() ? resolve() : this.waiters.push(check));
      this.waiters.push(check);
    });
  }

  count(n: number): Promise<void> {
    return this.until(() => this.messages.length >= n);
  }

  closed(): Promise<void> {
    return this.until(() => this.closes.length > 0);
  }
}
