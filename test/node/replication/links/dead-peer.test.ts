/**
 * A peer in another process that dies or hangs, over every network link: killed with SIGKILL
 * (its sockets close: the link closes at once), or stopped with SIGSTOP (nothing closes, as when
 * its machine vanishes: the heartbeat closes the link). Only that the link closes is asserted,
 * with small limits and a generous test timeout; never how fast.
 *
 * The peer runs the built dist/ (npm run build).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Link } from '../../../../src/consistency/link.js';
import { listenReplicaTcp, type ReplicaServer } from '../../../../src/replication/links/tcp.js';
import { listenReplicaWs } from '../../../../src/replication/links/websocket-server.js';
import { dropTestTls, Inbox, serverTls, testTls } from './kinds.js';

const PEER = fileURLToPath(new URL('./fixtures/peer.mjs', import.meta.url));
const TOKEN = randomBytes(24).toString('base64url');

afterAll(() => dropTestTls());

const listeners: Record<string, (o: { heartbeatMs: number; deadAfterMs: number; onLink: (l: Link) => void }) => Promise<ReplicaServer>> = {
  tcp: (o) => listenReplicaTcp({ token: TOKEN, ...o }),
  tls: (o) => listenReplicaTcp({ token: TOKEN, tls: serverTls(), ...o }),
  websocket: (o) => listenReplicaWs({ token: TOKEN, ...o }),
  'websocket tls': (o) => listenReplicaWs({ token: TOKEN, tls: serverTls(), ...o }),
};

async function start(kind: string, deadAfterMs: number): Promise<{ child: ChildProcess; link: Inbox; raw: Link<object>; server: ReplicaServer }> {
  let got!: (l: Link) => void;
  const accepted = new Promise<Link>((r) => (got = r));
  const server = await listeners[kind]!({ heartbeatMs: 100, deadAfterMs, onLink: (l) => got(l) });
  const child = spawn(process.execPath, [PEER, server.url], {
    env: { ...process.env, STRATADISK_TEST_TOKEN: TOKEN, STRATADISK_TEST_CA: kind.includes('tls') ? testTls().caCert : '', STRATADISK_TEST_HEARTBEAT_MS: '100' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the peer exited (${code}) before it was ready`)));
  });
  const raw = (await accepted) as Link<object>;
  const link = new Inbox(raw);
  // the peer echoes: it is alive and the link works (on a machine so loaded that the peer missed
  // its beats the link may already be closed, which the tests below accept as well)
  raw.send({ ping: 1 });
  await link.until(() => link.messages.length > 0 || link.closes.length > 0);
  return { child, link, raw, server };
}

describe.each(Object.keys(listeners))('dead peer over %s', (kind) => {
  it('a peer killed with SIGKILL: the link closes (its socket closed)', async () => {
    // no heartbeat can close it here: only the closed socket
    const { child, link, server } = await start(kind, 600_000);
    child.kill('SIGKILL');
    await link.closed();
    expect(link.closes).toHaveLength(1);
    expect(link.closes[0]).not.toMatch(/silent/);
    await server.close();
  });

  it('a peer stopped with SIGSTOP (a machine that vanished): the heartbeat closes the link', async () => {
    const { child, link, raw, server } = await start(kind, 1000);
    child.kill('SIGSTOP');
    try {
      raw.send({ into: 'the void' });
      await link.closed();
      expect(link.closes).toHaveLength(1);
      expect(link.closes[0]).toMatch(/silent for 1000 ms/);
    } finally {
      child.kill('SIGKILL');
    }
    await server.close();
  });
});
