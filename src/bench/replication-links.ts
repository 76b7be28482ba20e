/**
 * `replication-links`: the transports replication runs over, on loopback, in one process:
 * round trips of a 1 KiB message (echoed; median of 2,000, as round trips per second) and the
 * throughput of 1 MiB messages one way, over our TCP, TLS and WebSocket links (framing, token
 * handshake done beforehand, heartbeats running) against the same transport bare: a raw socket
 * (TCP, TLS 1.3) or a raw `ws` connection moving the same bytes, from the same run.
 *
 * Run alone: `node dist/bench/replication-links.js [--quick]` prints one JSON line per result.
 * TLS uses a throwaway certificate made with the `openssl` command.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import type { Link } from '../consistency/link.js';
import { connectReplicaTcp, listenReplicaTcp, type ReplicaServer } from '../replication/links/tcp.js';
import { connectReplicaWs } from '../replication/links/websocket.js';
import { listenReplicaWs } from '../replication/links/websocket-server.js';
import { median, result, type BenchResult } from './result.js';

export interface ReplicationLinksBenchOptions {
  quick?: boolean;
  onResult?: (r: BenchResult) => void;
}

const KiB = 1024;
const MiB = 1 << 20;

interface Tls {
  cert: string;
  key: string;
  dir: string;
}

function makeTls(): Tls {
  const dir = mkdtempSync(join(tmpdir(), 'sd-bench-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', 'key.pem', '-out', 'cert.pem'], { cwd: dir, stdio: 'ignore' });
  return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8'), dir };
}

/** Something that sends a message of n bytes and resolves when the peer's answer is back. */
interface Pipe {
  /** one 1 KiB round trip */
  roundTrip(): Promise<void>;
  /** send `count` messages of `size` bytes; resolves when the peer has all of them */
  stream(count: number, size: number): Promise<void>;
  close(): Promise<void>;
}

/** Our link: the server echoes {t:'echo'} and answers {t:'got'} after the count of {t:'bulk'} asked. */
async function linkPipe(kind: 'tcp' | 'tls' | 'ws', tls: Tls, token: string): Promise<Pipe> {
  const slow = { heartbeatMs: 1000, deadAfterMs: 600_000 };
  const onLink = (link: Link) => {
    let want = 0;
    let got = 0;
    link.listen({
      message: (raw) => {
        const m = raw as { t: string; n?: number; data?: Uint8Array };
        if (m.t === 'echo') link.send(m);
        else if (m.t === 'expect') {
          want = m.n!;
          got = 0;
        } else if (m.t === 'bulk' && ++got === want) link.send({ t: 'got' });
      },
      close: () => {},
    });
  };
  let server: ReplicaServer;
  let client: Link<object>;
  if (kind === 'ws') {
    server = await listenReplicaWs({ token, onLink, ...slow });
    client = await connectReplicaWs<object>(server.url, { token, ...slow });
  } else {
    server = await listenReplicaTcp({ token, onLink, ...slow, ...(kind === 'tls' ? { tls } : {}) });
    client = await connectReplicaTcp<object>(server.url, { token, ...slow, ...(kind === 'tls' ? { ca: tls.cert } : {}) });
  }
  let waiter: (() => void) | undefined;
  client.listen({ message: () => waiter?.(), close: () => {} });
  const next = () => new Promise<void>((r) => (waiter = r));
  const payload = new Uint8Array(KiB);
  return {
    async roundTrip() {
      const p = next();
      client.send({ t: 'echo', data: payload });
      await p;
    },
    async stream(count, size) {
      const data = new Uint8Array(size);
      client.send({ t: 'expect', n: count });
      const p = next();
      for (let i = 0; i < count; i++) client.send({ t: 'bulk', data });
      await p;
    },
    async close() {
      client.close();
      await server.close();
    },
  };
}

/** The bare transport: raw bytes, the server echoing 1 KiB and answering one byte after the bytes asked. */
async function rawSocketPipe(kind: 'tcp' | 'tls', tls: Tls): Promise<Pipe> {
  let expectBytes = 0;
  let mode: 'echo' | 'bulk' = 'echo';
  const serve = (s: Socket) => {
    s.setNoDelay(true);
    let seen = 0;
    s.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (mode === 'echo') {
        if (seen >= KiB) {
          seen -= KiB;
          s.write(new Uint8Array(KiB));
        }
      } else if (seen >= expectBytes) {
        seen = 0;
        s.write(new Uint8Array(1));
      }
    });
    s.on('error', () => {});
  };
  const server: Server = kind === 'tls' ? createTlsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.3' }, serve) : createServer(serve);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const socket = await new Promise<Socket>((resolve) => {
    const s: Socket = kind === 'tls' ? tlsConnect({ host: '127.0.0.1', port, ca: tls.cert, minVersion: 'TLSv1.3' }, () => resolve(s)) : createConnection({ host: '127.0.0.1', port }, () => resolve(s));
  });
  socket.setNoDelay(true);
  let have = 0;
  let need = 0;
  let waiter: (() => void) | undefined;
  socket.on('data', (c: Buffer) => {
    have += c.length;
    if (have >= need && waiter) {
      have -= need;
      const w = waiter;
      waiter = undefined;
      w();
    }
  });
  const wait = (n: number) =>
    new Promise<void>((r) => {
      need = n;
      waiter = r;
    });
  const payload = new Uint8Array(KiB);
  return {
    async roundTrip() {
      mode = 'echo';
      const p = wait(KiB);
      socket.write(payload);
      await p;
    },
    async stream(count, size) {
      mode = 'bulk';
      expectBytes = count * size;
      const data = new Uint8Array(size);
      const p = wait(1);
      for (let i = 0; i < count; i++) socket.write(data);
      await p;
    },
    async close() {
      socket.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A bare `ws` connection: binary messages, echo and a one-byte answer after the count asked. */
async function rawWsPipe(): Promise<Pipe> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * MiB });
  await new Promise<void>((r) => wss.once('listening', r));
  let want = 0;
  wss.on('connection', (ws) => {
    let got = 0;
    ws.on('message', (data: Buffer) => {
      if (data.length === KiB) ws.send(data);
      else if (data.length === 8) {
        want = Number(data.readBigUInt64BE(0));
        got = 0;
      } else if (++got === want) ws.send(new Uint8Array(1));
    });
  });
  const port = (wss.address() as { port: number }).port;
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
  await new Promise((r) => ws.once('open', r));
  let waiter: (() => void) | undefined;
  ws.on('message', () => waiter?.());
  const next = () => new Promise<void>((r) => (waiter = r));
  const payload = new Uint8Array(KiB);
  return {
    async roundTrip() {
      const p = next();
      ws.send(payload);
      await p;
    },
    async stream(count, size) {
      const head = Buffer.alloc(8);
      head.writeBigUInt64BE(BigInt(count));
      ws.send(head);
      const data = new Uint8Array(size);
      const p = next();
      for (let i = 0; i < count; i++) ws.send(data);
      await p;
    },
    async close() {
      ws.terminate();
      await new Promise((r) => wss.close(r));
    },
  };
}

async function latency(pipe: Pipe, n: number): Promise<number> {
  for (let i = 0; i < 100; i++) await pipe.roundTrip();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await pipe.roundTrip();
    times.push(performance.now() - t);
  }
  return median(times) * 1000;
}

async function throughput(pipe: Pipe, count: number, rounds: number): Promise<number> {
  await pipe.stream(4, MiB);
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    await pipe.stream(count, MiB);
    rates.push((count * MiB) / ((performance.now() - t) / 1000) / MiB);
  }
  return median(rates);
}

export async function benchReplicationLinks(opts: ReplicationLinksBenchOptions = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const trips = quick ? 200 : 2000;
  const count = quick ? 16 : 128;
  const rounds = quick ? 1 : 5;
  const token = randomBytes(24).toString('base64url');
  const tls = makeTls();
  const out: BenchResult[] = [];
  const emit = (r: BenchResult) => {
    out.push(r);
    opts.onResult?.(r);
  };
  try {
    for (const kind of ['tcp', 'tls', 'ws'] as const) {
      const label = { tcp: 'TCP', tls: 'TLS 1.3', ws: 'WebSocket' }[kind];
      const peerName = kind === 'ws' ? 'bare ws connection (no framing, no auth)' : `bare ${label} socket (no framing, no auth)`;
      const ours = await linkPipe(kind, tls, token);
      const peer = kind === 'ws' ? await rawWsPipe() : await rawSocketPipe(kind, tls);
      try {
        const [oursUs, peerUs] = [await latency(ours, trips), await latency(peer, trips)];
        emit(result(`replication link ${label} loopback: 1 KiB round trip`, 1e6 / oursUs, 1e6 / peerUs, 'round trips/s', peerName, undefined, `median of ${trips}: ours ${oursUs.toFixed(1)} µs, bare ${peerUs.toFixed(1)} µs`));
        const [oursMiB, peerMiB] = [await throughput(ours, count, rounds), await throughput(peer, count, rounds)];
        emit(result(`replication link ${label} loopback: 1 MiB messages one way`, oursMiB, peerMiB, 'MiB/s', peerName, undefined, `${count} messages per round, median of ${rounds} rounds`));
      } finally {
        await ours.close();
        await peer.close();
      }
    }
  } finally {
    rmSync(tls.dir, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchReplicationLinks({ quick: process.argv.includes('--quick'), onResult: (r) => console.log(JSON.stringify(r)) });
}
