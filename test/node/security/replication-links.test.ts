/**
 * Who may use a replication link (src/replication/links/): only a peer holding the token (both
 * ways, over TCP, TLS and WebSocket), never in clear beyond loopback, only a server whose
 * certificate a trusted CA signed, only TLS 1.3, no browser page unless its origin is allowed;
 * an unauthenticated peer cannot make the server buffer much, hold it long, or crowd it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connectReplicaTcp, listenReplicaTcp } from '../../../src/replication/links/tcp.js';
import { connectReplicaWs } from '../../../src/replication/links/websocket.js';
import { listenReplicaWs } from '../../../src/replication/links/websocket-server.js';
import { makeTestTls } from '../helpers/tls-certs.js';
import { dropTestTls, serverTls, testTls } from '../replication/links/kinds.js';

const TOKEN = randomBytes(24).toString('base64url');
const OTHER = randomBytes(24).toString('base64url');
const otherTls = makeTestTls();

afterAll(() => {
  dropTestTls();
  rmSync(otherTls.dir, { recursive: true, force: true });
});

function refusals() {
  const seen: string[] = [];
  let wake: () => void = () => {};
  return {
    seen,
    onRefused: (reason: string) => {
      seen.push(reason);
      wake();
    },
    next: () => (seen.length > 0 ? Promise.resolve() : new Promise<void>((r) => (wake = r))),
  };
}

/** Resolves when the server has closed `s` (reading what it sent, so its end of stream is seen). */
function closedSocket(s: Socket): Promise<void> {
  s.resume();
  return new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));
}

const servers = {
  tcp: (o: { token: string; onRefused?: (r: string) => void; authTimeoutMs?: number; maxPending?: number }) => listenReplicaTcp({ ...o, onLink: (l) => l.close() }),
  websocket: (o: { token: string; onRefused?: (r: string) => void; authTimeoutMs?: number; maxPending?: number }) => listenReplicaWs({ ...o, onLink: (l) => l.close() }),
};
const connects = {
  tcp: (url: string, token: string) => connectReplicaTcp(url, { token }),
  websocket: (url: string, token: string) => connectReplicaWs(url, { token }),
};

describe.each(['tcp', 'websocket'] as const)('replication link security: %s', (kind) => {
  it('refuses a wrong token on both sides, and no message shows either token', async () => {
    const r = refusals();
    const server = await servers[kind]({ token: TOKEN, onRefused: r.onRefused });
    const e = (await connects[kind](server.url, OTHER).then(
      () => new Error('accepted'),
      (x: unknown) => x as Error,
    )) as Error & { code?: string };
    expect(e).toMatchObject({ code: 'permission-denied' });
    await r.next();
    expect(r.seen[0]).toMatch(/Authentication with the peer failed/);
    for (const text of [e.message, ...r.seen]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(OTHER);
    }
    await server.close();
  });

  it('closes a peer that says nothing within the time limit', async () => {
    const r = refusals();
    const server = await servers[kind]({ token: TOKEN, onRefused: r.onRefused, authTimeoutMs: 200 });
    const port = server.port;
    if (kind === 'tcp') {
      const s = netConnect(port, '127.0.0.1');
      s.on('error', () => {});
      await closedSocket(s);
    } else {
      const ws = new WebSocket(server.url);
      await new Promise((res) => ws.once('close', res));
    }
    await r.next();
    expect(r.seen[0]).toMatch(/within 200 ms/);
    await server.close();
  });

  it('cuts off a peer that sends more than a handshake before authenticating', async () => {
    const r = refusals();
    const server = await servers[kind]({ token: TOKEN, onRefused: r.onRefused });
    const big = new Uint8Array(64 << 10);
    new DataView(big.buffer).setUint32(0, 30 << 20); // a frame that claims 30 MiB
    if (kind === 'tcp') {
      const s = netConnect(server.port, '127.0.0.1');
      s.on('error', () => {});
      s.write(big);
      await closedSocket(s);
    } else {
      const ws = new WebSocket(server.url);
      ws.on('error', () => {});
      await new Promise((res) => ws.once('open', res));
      ws.send(big);
      await new Promise((res) => ws.once('close', res));
    }
    await r.next();
    expect(r.seen.join('\n')).toMatch(kind === 'tcp' ? /sent over 16384 bytes before authenticating/ : /bytes before authenticating|not exactly one frame/);
    await server.close();
  });

  it('refuses plain transport beyond loopback, listening and connecting, and tells to give a certificate', async () => {
    const listen = kind === 'tcp' ? listenReplicaTcp : listenReplicaWs;
    await expect(listen({ host: '0.0.0.0', token: TOKEN, onLink: () => {} })).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringMatching(/certificate/) });
    const url = kind === 'tcp' ? 'tcp://192.0.2.1:7000' : 'ws://192.0.2.1:7000/replica';
    await expect(connects[kind](url, TOKEN)).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringMatching(/TLS/) });
  });

  it('refuses a server whose certificate no trusted CA signed (wrong CA, and the system CAs)', async () => {
    const listen = kind === 'tcp' ? listenReplicaTcp : listenReplicaWs;
    const server = await listen({ token: TOKEN, tls: serverTls(), onLink: (l) => l.close() });
    const ca = readFileSync(otherTls.caCert, 'utf8');
    const go = (withCa: boolean) => (kind === 'tcp' ? connectReplicaTcp(server.url, { token: TOKEN, ...(withCa ? { ca } : {}) }) : connectReplicaWs(server.url, { token: TOKEN, ...(withCa ? { ca } : { servername: 'localhost' }) }));
    await expect(go(true)).rejects.toMatchObject({ code: 'untrusted' });
    await expect(go(false)).rejects.toMatchObject({ code: 'untrusted' });
    // the right CA works
    const ok = kind === 'tcp' ? await connectReplicaTcp(server.url, { token: TOKEN, ca: readFileSync(testTls().caCert) }) : await connectReplicaWs(server.url, { token: TOKEN, ca: readFileSync(testTls().caCert, 'utf8') });
    ok.close();
    await server.close();
  });

  it('refuses TLS older than 1.3', async () => {
    const listen = kind === 'tcp' ? listenReplicaTcp : listenReplicaWs;
    const server = await listen({ token: TOKEN, tls: serverTls(), onLink: (l) => l.close() });
    const err = await new Promise<Error>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: server.port, ca: readFileSync(testTls().caCert), maxVersion: 'TLSv1.2' });
      s.once('error', resolve);
      s.once('secureConnect', () => resolve(new Error('connected')));
    });
    expect(err.message).not.toBe('connected');
    await server.close();
  });

  it('lets only a bounded number of connections authenticate at once', async () => {
    const r = refusals();
    const server = await servers[kind]({ token: TOKEN, onRefused: r.onRefused, maxPending: 2 });
    const idle: (Socket | WebSocket)[] = [];
    for (let i = 0; i < 2; i++) {
      if (kind === 'tcp') {
        const s = netConnect(server.port, '127.0.0.1');
        s.on('error', () => {});
        // the server hello proves it took the connection
        await new Promise((res) => s.once('data', res));
        idle.push(s);
      } else {
        const ws = new WebSocket(server.url);
        await new Promise((res) => ws.once('message', res));
        idle.push(ws);
      }
    }
    await expect(connects[kind](server.url, TOKEN)).rejects.toBeDefined();
    await r.next();
    expect(r.seen[0]).toMatch(/too many connections \(2\)/);
    for (const s of idle) if (s instanceof WebSocket) s.terminate();
    else s.destroy();
    await server.close();
  });

  it('refuses a URL carrying credentials or a query', async () => {
    const scheme = kind === 'tcp' ? 'tcp' : 'ws';
    await expect(connects[kind](`${scheme}://user:${TOKEN}@127.0.0.1:7000`, TOKEN)).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(connects[kind](`${scheme}://127.0.0.1:7000/?token=${TOKEN}`, TOKEN)).rejects.toMatchObject({ code: 'invalid-argument' });
  });
});

describe('WebSocket origins', () => {
  it('refuses a browser page of an origin not listed (403), and admits a listed one', async () => {
    const r = refusals();
    const server = await listenReplicaWs({ token: TOKEN, onRefused: r.onRefused, origins: ['https://app.example'], onLink: (l) => l.close() });
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(server.url, { origin: 'https://evil.example' });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => {});
      ws.on('open', () => resolve(101));
    });
    expect(status).toBe(403);
    expect(r.seen[0]).toMatch(/origin https:\/\/evil.example/);
    const admitted = await new Promise<boolean>((resolve) => {
      const ws = new WebSocket(server.url, { origin: 'https://app.example' });
      ws.on('open', () => {
        ws.terminate();
        resolve(true);
      });
      ws.on('error', () => resolve(false));
    });
    expect(admitted).toBe(true);
    await server.close();
  });

  it('answers 404 on another path and 426 to plain HTTP', async () => {
    const server = await listenReplicaWs({ token: TOKEN, onLink: (l) => l.close() });
    const res = await fetch(`http://127.0.0.1:${server.port}/replica`);
    expect(res.status).toBe(426);
    await expect(connectReplicaWs(`ws://127.0.0.1:${server.port}/other`, { token: TOKEN })).rejects.toMatchObject({ code: 'not-found' });
    await server.close();
  });
});
