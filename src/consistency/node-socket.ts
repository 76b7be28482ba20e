/**
 * Separate Node processes: a local socket (a Unix domain socket, or a named pipe
 * `\\.\pipe\NAME` on Windows) carrying length-prefixed frames (./framing.ts). The process that
 * owns the volumes listens; writer processes connect and join. A process that exits closes its
 * socket, which drops it from the group at once; a hung one is dropped when its heartbeats stop.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { StrataError } from '../errors.js';
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
 * socket is 'exists' and left alone (src/util/unix-socket.ts). Close the returned server to
 * stop accepting; members already attached stay until `host.close()`.
 */
export async function listenGroup(host: GroupHost, path: string): Promise<Server> {
  const server = createServer((socket) => host.attach(socketLink(socket)));
  await listenOnSocket(server, path, 'group socket');
  return server;
}

/** Connect to a group's host listening at `path`. */
export function connectGroup<Out extends object = object>(path: string): Promise<Link<Out>> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socketLink<Out>(socket));
    });
    const onError = (e: Error) => reject(new StrataError('not-found', `No consistency-group host answers at ${path} (${e.message}); start the host first.`));
    socket.once('error', onError);
  });
}
