/**
 * Bounds on what a client may hold of the NBD server: how long it may take to negotiate, how
 * long a connection may sit idle, and how many connections may be open at once. A client that
 * connects and says nothing (or opens hundreds of connections) would otherwise hold sockets and
 * memory for as long as it likes.
 */
import type { Socket } from 'node:net';

/** A client must finish negotiating (TLS included) within this time: 10 s, as qemu-nbd's handshake limit. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Connections open at once (negotiating or serving); beyond it new ones are closed at once. */
export const DEFAULT_MAX_CONNECTIONS = 64;
/** No idle timeout by default: a guest's disk may sit idle for hours and still be in use. */
export const DEFAULT_IDLE_TIMEOUT_MS = 0;

export interface NbdLimits {
  handshakeTimeoutMs: number;
  /** 0: none */
  idleTimeoutMs: number;
  maxConnections: number;
}

export function resolveLimits(o: { handshakeTimeoutMs?: number; idleTimeoutMs?: number; maxConnections?: number }): NbdLimits {
  return {
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    idleTimeoutMs: o.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxConnections: o.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
  };
}

/**
 * Close the connection unless `done` is called within `ms`: the handshake limit. `close` is
 * called at most once; `done` cancels.
 */
export function deadline(ms: number, close: () => void): () => void {
  if (!(ms > 0) || !Number.isFinite(ms)) return () => {};
  const t = setTimeout(close, ms);
  t.unref();
  return () => clearTimeout(t);
}

/**
 * Close `socket` once nothing was read or written on it for `ms` while `busy()` is false (no
 * request in flight). Activity re-arms the timer (socket.setTimeout).
 */
export function closeWhenIdle(socket: Socket, ms: number, busy: () => boolean, close: () => void): void {
  if (!(ms > 0) || !Number.isFinite(ms)) return;
  socket.setTimeout(ms);
  socket.on('timeout', () => {
    if (busy()) socket.setTimeout(ms);
    else close();
  });
}
