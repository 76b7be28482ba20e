/**
 * A child process that serves connections of a read-only NBD server (ServeNbdOptions.processes).
 * The parent negotiates each connection and then hands the socket over (child_process IPC with
 * a handle), with the bytes it had already read past the negotiation and the session settled
 * there. This process opens the same volume read-only and runs the transmission phase, so the
 * socket writes and the request handling of several connections run on several cores (one Node
 * thread per process), as nbdkit's threads do. Nothing here writes: only read-only servers use it.
 *
 * TLS servers hand each connection over as accepted instead (`accept`): a TLS session cannot
 * move between processes, so this process negotiates it, STARTTLS and the TLS handshake included,
 * with the credentials `init` brought over the IPC channel.
 *
 * Messages from the parent: `init` (open the volume; answers `ready` or `failed`), `conn` (with
 * the socket, negotiated), `accept` (with the socket, as accepted), `close` (stop reading
 * requests, answer those read, exit). Each connection's end is reported (`ended`).
 */
import type { Socket } from 'node:net';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { Volume } from '../../volume/volume.js';
import { ExportRegistry } from './exports.js';
import { negotiate, type Conn } from './handshake.js';
import { closeWhenIdle, deadline } from './limits.js';
import { fromWire, tlsConfig, type TlsConfig, type WireTls } from './tls.js';
import { SocketReader } from './socket-reader.js';
import { BufferPool, Transmission } from './transmission.js';

export type WorkerMessage =
  | { type: 'init'; dir: string; name: string; snapshot: string | null; syncMaxBytes: number; idleTimeoutMs: number; handshakeTimeoutMs: number; tls: WireTls | null }
  | { type: 'accept' }
  | { type: 'conn'; exportName: string; flags: number; structuredReplies: boolean; baseAllocationId: number; pending: string }
  | { type: 'close' };

/** `ended`: a connection handed over has closed (the parent counts open connections against its cap). */
export type WorkerReply = { type: 'ready' } | { type: 'failed'; message: string } | { type: 'closed' } | { type: 'ended' };

const send = (m: WorkerReply) => process.send?.(m);
let registry: ExportRegistry | undefined;
let volume: Volume | undefined;
const pool = new BufferPool();
const sessions = new Set<Transmission>();
const sockets = new Set<Socket>();
let idleTimeoutMs = 0;
let handshakeTimeoutMs = 0;
let tls: TlsConfig | undefined;

process.on('message', (m: WorkerMessage, handle?: unknown) => {
  if (m.type === 'init') {
    idleTimeoutMs = m.idleTimeoutMs;
    handshakeTimeoutMs = m.handshakeTimeoutMs;
    try {
      tls = m.tls ? tlsConfig(fromWire(m.tls)) : undefined;
    } catch (e) {
      send({ type: 'failed', message: (e as Error).message });
      return;
    }
    const ns = new NodeDirNamespace(m.dir, { readOnly: true, syncMaxBytes: m.syncMaxBytes });
    Volume.open(ns, { readOnly: true }).then(
      (v) => {
        volume = v;
        registry = new ExportRegistry(v, m.name, m.snapshot ?? undefined, true);
        send({ type: 'ready' });
      },
      (e: Error) => send({ type: 'failed', message: e.message }),
    );
  } else if (m.type === 'conn') {
    const socket = handle as Socket | undefined;
    if (socket) void serve(socket, m);
  } else if (m.type === 'accept') {
    const socket = handle as Socket | undefined;
    if (socket) void accept(socket);
    else send({ type: 'ended' });
  } else if (m.type === 'close') {
    void close();
  }
});
// The parent gone: nothing will hand us work or wait for our answers.
process.on('disconnect', () => void close());

async function serve(socket: Socket, m: Extract<WorkerMessage, { type: 'conn' }>): Promise<void> {
  sockets.add(socket);
  socket.on('error', () => {});
  socket.setNoDelay(true);
  try {
    const e = registry?.lookup(m.exportName);
    if (!e) throw new Error(`export "${m.exportName}" is gone`);
    const reader = new SocketReader(socket, Buffer.from(m.pending, 'base64'));
    const t = new Transmission(socket, reader, { export: e, flags: m.flags, structuredReplies: m.structuredReplies, baseAllocationId: m.baseAllocationId, dirtyBitmapId: 0 }, pool);
    closeWhenIdle(socket, idleTimeoutMs, () => t.busy, () => socket.destroy());
    t.onDamage = (err) => process.stderr.write(`stratadisk: serve-nbd: ${err.message} (the client got EIO)\n`);
    t.onRequestError = (err) => process.stderr.write(`stratadisk: serve-nbd: a request failed: ${err.message} (the client got EIO)\n`);
    await t.runListed(sessions);
  } catch {
    // a protocol violation or a vanished client: this connection ends, nothing else does
    socket.destroy();
  } finally {
    sockets.delete(socket);
    send({ type: 'ended' });
  }
}

/** A connection as accepted (TLS servers): negotiate it here, then serve it. */
async function accept(socket: Socket): Promise<void> {
  socket.on('error', () => {});
  socket.setNoDelay(true);
  const conn: Conn = { socket, reader: new SocketReader(socket) };
  const hangUp = () => {
    conn.socket.destroy();
    socket.destroy();
  };
  sockets.add(socket);
  const negotiated = deadline(handshakeTimeoutMs, hangUp);
  try {
    let session;
    try {
      session = await negotiate(conn, registry!, () => closing !== undefined, tls);
    } finally {
      negotiated();
    }
    if (!session) {
      conn.socket.end();
      return;
    }
    sockets.add(conn.socket);
    const t = new Transmission(conn.socket, conn.reader, session, pool);
    closeWhenIdle(conn.socket, idleTimeoutMs, () => t.busy, hangUp);
    t.onDamage = (err) => process.stderr.write(`stratadisk: serve-nbd: ${err.message} (the client got EIO)\n`);
    t.onRequestError = (err) => process.stderr.write(`stratadisk: serve-nbd: a request failed: ${err.message} (the client got EIO)\n`);
    await t.runListed(sessions);
  } catch {
    hangUp();
  } finally {
    sockets.delete(socket);
    sockets.delete(conn.socket);
    send({ type: 'ended' });
  }
}

let closing: Promise<void> | undefined;
function close(): Promise<void> {
  closing ??= (async () => {
    for (const t of sessions) t.stop();
    await Promise.race([Promise.allSettled([...sessions].map((t) => t.idle())), new Promise((r) => setTimeout(r, 10_000).unref())]);
    for (const s of sockets) s.destroy();
    await volume?.close().catch(() => {});
    send({ type: 'closed' });
    process.disconnect?.();
    process.exit(0);
  })();
  return closing;
}
