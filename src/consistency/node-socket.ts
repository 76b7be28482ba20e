/**
 * Separate Node processes: a local socket (a Unix domain socket, or a named pipe
 * `\\.\pipe\NAME` on Windows) carrying length-prefixed frames (./framing.ts). The process that
 * owns the volumes listens; writer processes connect and join. A process that exits closes its
 * socket, which drops it from the group at once; a hung one is dropped when its heartbeats stop.
 *
 * Only the host's user may join: whoever joins can freeze every writer and snapshot the
 * volumes. The socket is 0600 in a private directory (src/util/unix-socket.ts) and each peer
 * proves it runs as the host's user before its first frame, and checks the host likewise
 * (src/util/socket-auth.ts).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { StrataError } from '../errors.js';
import { acceptPeer, createSocketKey, peerAuthApplies, provePeer, type SocketKey } from '../util/socket-auth.js';
import { listenOnSocket } from '../util/unix-socket.js';
import { encodeFrame, FrameReader } from './framing.js';
import type { GroupHost } from './host.js';
import { LinkEnd, type Link } from './link.js';

/** A link over a connected socket. Malformed input closes the socket. */
export function socketLink<Out extends object = object>(socket: Socket): Link<Out> {
  const end = new LinkEnd();
  const reader = new FrameReader();
  socket.setNoDelay(true);
  const finish = (reason: string) => {
    if (end.end(reason)) socket.destroy();
  };
  socket.on('data', (chunk: Buffer) => {
    let msgs: unknown[];
    try {
      msgs = reader.push(chunk);
    } catch (e) {
      finish(e instanceof Error ? e.message : String(e));
      return;
    }
    for (const m of msgs) end.deliver(m);
  });
  socket.on('close', () => finish('the socket closed'));
  socket.on('error', (e) => finish(`socket error: ${e.message}`));
  return {
    send(msg) {
      if (end.closed || socket.destroyed) return;
      let frame: Uint8Array;
      try {
        frame = encodeFrame(msg);
      } catch (e) {
        finish(e instanceof Error ? e.message : String(e));
        return;
      }
      socket.write(frame);
    },
    listen: (h) => end.listen(h),
    close() {
      if (end.end('closed')) socket.end();
    },
  };
}

/**
 * Serve `host` on a local socket at `path`. A stale socket file there (its server died) is
 * removed first; a socket another process listens on is 'locked', and anything that is not a
 * socket is 'exists' and left alone (src/util/unix-socket.ts). Peers that cannot prove they run
 * as this process's user are refused (`onRefused` hears why). Close the returned server to stop
 * accepting; members already attached stay until `host.close()`.
 */
export async function listenGroup(host: GroupHost, path: string, options: { onRefused?: (reason: string) => void } = {}): Promise<Server> {
  let setKey!: (k: SocketKey | null) => void;
  const key = new Promise<SocketKey | null>((r) => (setKey = r));
  const pending = new Set<Socket>();
  const server = createServer((socket) => {
    pending.add(socket);
    socket.pause();
    socket.on('error', () => {});
    void key
      .then((k) => acceptPeer(socket, k, 'group socket', options.onRefused))
      .then((ok) => {
        pending.delete(socket);
        if (!ok || socket.destroyed) return;
        host.attach(socketLink(socket));
        socket.resume();
      });
  });
  const listening = await listenOnSocket(server, path, 'group socket');
  try {
    setKey(await createSocketKey(listening));
  } catch (e) {
    for (const s of pending) s.destroy();
    await new Promise((r) => server.close(r));
    throw e;
  }
  return server;
}

/**
 * Connect to a group's host listening at `path`: `not-found` when none answers there,
 * `permission-denied` when it is another user's (or it refuses us).
 */
export function connectGroup<Out extends object = object>(path: string): Promise<Link<Out>> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const onError = (e: NodeJS.ErrnoException) => {
      if (e.code === 'EACCES' || e.code === 'EPERM') reject(new StrataError('permission-denied', `The consistency-group host at ${path} belongs to another user; only the user who started it can join. Run as that user.`));
      else reject(new StrataError('not-found', `No consistency-group host answers at ${path} (${e.message}); start the host first.`));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      (peerAuthApplies(path) ? provePeer(socket, path, 'group socket') : Promise.resolve()).then(
        () => {
          socket.off('error', onError);
          const link = socketLink<Out>(socket);
          socket.resume();
          resolve(link);
        },
        (e: unknown) => {
          socket.off('error', onError);
          socket.destroy();
          reject(e instanceof StrataError ? e : new StrataError('io', `Consistency-group host at ${path}: ${(e as Error).message}`, { cause: e }));
        },
      );
    });
  });
}
