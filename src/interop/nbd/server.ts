import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { unlink } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { basename, resolve } from 'node:path';
import { StrataError } from '../../errors.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { listenOnSocket } from '../../util/unix-socket.js';
import type { Journal } from '../../journal/journal.js';
import { openJournaled } from '../../journal/open.js';
import { diffPoints, type DiffPoint } from '../../journal/diff.js';
import type { VolumeReader } from '../../volume/volume-reader.js';
import { Volume } from '../../volume/volume.js';
import { ExportRegistry } from './exports.js';
import { negotiate, type Conn } from './handshake.js';
import { closeWhenIdle, deadline, resolveLimits } from './limits.js';
import { defaultNbdSocket, makeSocketPrivate } from './socket-place.js';
import { tlsConfig, toWire, type NbdTls } from './tls.js';
import { SocketReader } from './socket-reader.js';
import { BufferPool, Transmission } from './transmission.js';
import type { WorkerMessage, WorkerReply } from './process-worker.js';

/** What to serve: an open volume, or a volume directory (optionally one of its snapshots). */
/** A volume, or a directory with a snapshot or a point of its write log (`seq:N`, `time:ISO`, `mark:LABEL`; read-only) to serve as the default export. */
export type NbdSource = Volume | { dir: string; snapshot?: string; point?: string };

export interface ServeNbdOptions {
  /**
   * TCP port (0 picks a free one). TCP needs `tls`, or `insecure: true`. Ignored with `socket`.
   * With none of port, host, socket and tls, the server listens on a Unix socket of its own
   * (mode 0600, in a 0700 directory of this user's: see socket-place.ts).
   */
  port?: number;
  /** TCP address to listen on; default 127.0.0.1 (loopback only). Needs `tls` or `insecure` as `port` does. */
  host?: string;
  /** Listen on this Unix socket path (made 0600); TLS may be used there too. */
  socket?: string;
  /**
   * Require TLS (NBD_OPT_STARTTLS; every other option before it is refused with
   * NBD_REP_ERR_TLS_REQD): X.509 certificates (client certificates checked against a CA by
   * default) or pre-shared keys. With TLS and no `socket`, the server listens on TCP.
   */
  tls?: NbdTls;
  /**
   * Serve TCP without TLS: whoever can reach the address (every local user, at least) can read
   * and write the volume. Needed for `port`/`host` without `tls`.
   */
  insecure?: boolean;
  /** Close a connection that has not finished negotiating (TLS included) within this time; default 10 s. */
  handshakeTimeoutMs?: number;
  /** Close a connection idle (no request in flight, nothing sent or received) for this long; default 0: never. */
  idleTimeoutMs?: number;
  /** Connections open at once; a connection beyond it is closed at once (onConnectionRefused). Default 64. */
  maxConnections?: number;
  /** Called when a connection is closed at once because `maxConnections` are open; for logging. */
  onConnectionRefused?: (open: number) => void;
  /** Serve every export read-only (the volume is then opened read-only too). */
  readOnly?: boolean;
  /** Name of the live volume's export besides '' (default: the directory's base name, or 'volume'). */
  name?: string;
  /** With a Volume passed in: leave it open on close() (it is still flushed). Default false. */
  keepOpen?: boolean;
  /**
   * Read-only servers of a directory: serve the connections from this many child processes
   * (each opens the volume read-only; this process negotiates and hands each connection over,
   * round robin). One Node thread runs the protocol per process, so a client with several
   * connections (nbdcopy, qemu with multi-conn) gets several cores, as nbdkit's threads do.
   * Default 0: every connection in this process. Ignored for writable servers, a Volume passed
   * in, or when the package is not built (src/ run directly). With TLS the children take each
   * connection as accepted and negotiate it themselves (a TLS session cannot move between
   * processes); the credentials reach them over the IPC channel.
   */
  processes?: number;
  /**
   * Serve the changes of the default export since `point` (a snapshot, a log point) as the meta
   * context `qemu:dirty-bitmap:NAME` (see dirty-bitmap.ts, src/journal/diff.ts). Only for a
   * directory served read-only (or a snapshot or log point of it), without `processes`.
   */
  dirtySince?: { point: DiffPoint; name: string };
  /** Called with each connection-level failure (bad magic, client gone); for logging. */
  onConnectionError?: (e: Error) => void;
  /** Called when a request is refused because stored data failed its checksum (the client got EIO); for logging. */
  onDamage?: (e: Error) => void;
  /**
   * Called with the full error when a request fails with EIO for another reason; for logging.
   * Clients get a fixed message (no paths, process IDs or host names of the server).
   */
  onRequestError?: (e: Error) => void;
}

export interface NbdServer {
  /** nbd://127.0.0.1:PORT/ or nbd+unix:///?socket=PATH (nbds:// and nbds+unix:// with TLS) */
  uri: string;
  /** the TCP port (0 for a Unix socket) */
  port: number;
  /** the Unix socket's path, when listening on one */
  socket?: string;
  /** whether clients must use TLS */
  tls: boolean;
  /** the served volume (live), for inspection; after a switch-over, the copy */
  readonly volume: Volume;
  /**
   * Switch the live export over to another volume (a mirror job's copy, same size and block
   * size) once `next` resolves, without dropping clients: requests already running finish on
   * the old volume; writes it refuses meanwhile because the job retired it (\`closed\`) wait for
   * the switch and are retried on the new one; every request read after the switch goes to the
   * new one (snapshot exports follow too where the copy has the snapshot). \`null\` or a
   * rejection means no switch (the job failed; the old volume was never retired). The server
   * owns the new volume from then on (closes it on close()); the old one stays open, read by
   * nothing new, until close(). Resolves once switched (or not).
   */
  switchOver(next: Promise<Volume | null>): Promise<void>;
  /** connections currently open */
  readonly connections: number;
  /** Stop accepting, let in-flight requests finish, drop every connection, flush and close the volume. */
  close(): Promise<void>;
}

/**
 * Largest transfer the served volume's files do with a blocking call (NodeFileOpenOptions
 * .syncMaxBytes; 1 MiB elsewhere). Small reads, random 4 KiB ones above all, are cheapest
 * done at once on this thread, and are then answered in the turn that received them. Larger
 * ones go to libuv's thread pool: the copy out of the page cache, about half the cost of a
 * large read, then runs on other threads while this one serves the sockets. On a machine
 * shared with the client and other jobs that took sequential reads from ~0.5× to ~0.85×
 * nbdkit's (which spreads its work over 16 threads); see README.md.
 */
export const SYNC_MAX_BYTES = 64 << 10;

/**
 * The same limit in a serving process (`processes`): there the thread serves few connections and
 * the other processes use the other cores, so a blocking copy out of the page cache is cheaper
 * than a hand-off to the pool and back (futex wake-ups, a promise per read). Measured on the
 * 2-core VM, nbdcopy sequential with 2 serving processes, quiet machine, same-run alternation:
 * 0.79–0.84× nbdkit with blocking reads up to 4 MiB vs 0.76–0.78× through the pool.
 */
export const PROCESS_SYNC_MAX_BYTES = 4 << 20;

/** Time a closing server waits for in-flight requests before dropping connections anyway. */
const CLOSE_GRACE_MS = 10_000;

/**
 * Serve a volume over NBD (fixed newstyle; see src/interop/nbd/README.md for what is supported).
 * Several clients may connect at once; each has its own negotiation and request stream, and all
 * share the one Volume, which orders writes.
 */
export async function serveNbd(source: NbdSource, options: ServeNbdOptions = {}): Promise<NbdServer> {
  let volume: Volume;
  let ownsVolume: boolean;
  let snapshot: string | undefined;
  let name = options.name;
  /** the read-only log and view when serving a point of the write log */
  let pointJournal: Journal | null = null;
  let pointView: { name: string; reader: VolumeReader } | undefined;
  // refused before anything is opened (a writable open would take the lock and recover the log)
  if (options.dirtySince) {
    const fixed = !(source instanceof Volume) && (options.readOnly === true || source.snapshot !== undefined || source.point !== undefined);
    if (!fixed) throw new StrataError('invalid-argument', 'A dirty bitmap describes a fixed view: serve the directory read-only (--read-only), or a snapshot or point of it.');
    if ((options.processes ?? 0) > 0) throw new StrataError('invalid-argument', 'A dirty bitmap is served from this process; leave out processes (--processes).');
  }
  if (source instanceof Volume) {
    volume = source;
    ownsVolume = !options.keepOpen;
    const ns = volume.ns;
    name ??= ns instanceof NodeDirNamespace ? basename(resolve(ns.dir)) : 'volume';
  } else {
    snapshot = source.snapshot;
    // A snapshot (or a point of the log) is read-only, so serving one needs no writer lock on the volume.
    const readOnly = options.readOnly === true || snapshot !== undefined || source.point !== undefined;
    const ns = new NodeDirNamespace(source.dir, { readOnly, syncMaxBytes: SYNC_MAX_BYTES });
    const logNamespace = (where: string) => new NodeDirNamespace(where, { create: false, readOnly });
    if (source.point !== undefined) {
      const opened = await openJournaled(ns, { readOnly: true, logNamespace });
      volume = opened.volume;
      pointJournal = opened.journal;
      try {
        if (!pointJournal) throw new StrataError('not-found', `${source.dir} keeps no write log, so it has no point ${source.point}; start one with \`stratadisk journal enable ${source.dir}\`.`);
        pointView = { name: source.point, reader: pointJournal.view(source.point) };
      } catch (e) {
        await pointJournal?.close();
        await volume.close();
        throw e;
      }
    } else {
      // a writer attaches the volume's write log, if it keeps one (closing the volume closes it);
      // a dirty bitmap since a log point needs the log read-only
      if (readOnly && options.dirtySince) {
        const opened = await openJournaled(ns, { readOnly: true, logNamespace });
        volume = opened.volume;
        pointJournal = opened.journal;
      } else volume = readOnly ? await Volume.open(ns, { readOnly }) : (await openJournaled(ns, { logNamespace })).volume;
    }
    ownsVolume = true;
    name ??= basename(resolve(source.dir));
    if (snapshot !== undefined && !volume.snapshots().some((s) => s.name === snapshot)) {
      await pointJournal?.close();
      await volume.close();
      throw new StrataError('not-found', `No snapshot named "${snapshot}" in ${source.dir}. List them with \`stratadisk snapshots ${source.dir}\`.`);
    }
  }
  const registry = new ExportRegistry(volume, name, snapshot, options.readOnly === true || pointView !== undefined, pointView);
  const closeOwned = async (): Promise<void> => {
    await pointJournal?.close();
    await volume.close();
  };
  if (options.dirtySince) {
    try {
      const served: DiffPoint = pointView ? { log: pointView.name } : snapshot !== undefined ? { snapshot } : 'live';
      registry.bitmap = { name: options.dirtySince.name, changed: diffPoints(volume, pointJournal, options.dirtySince.point, served) };
    } catch (e) {
      if (ownsVolume) await closeOwned();
      throw e;
    }
  }
  const limits = resolveLimits(options);
  let tls: ReturnType<typeof tlsConfig> | undefined;
  let socketPath = options.socket;
  try {
    if (options.tls) tls = tlsConfig(options.tls);
    const tcp = socketPath === undefined && (options.port !== undefined || options.host !== undefined || tls !== undefined);
    if (tcp && !tls && options.insecure !== true) {
      throw new StrataError('invalid-argument', `Serving NBD over TCP without TLS lets whoever reaches ${options.host ?? '127.0.0.1'} (every local user, at least) read and write the volume. Configure TLS (certificates or pre-shared keys), serve on a Unix socket, or pass insecure: true (--insecure) if that is what you want.`);
    }
    if (!tcp && socketPath === undefined) socketPath = defaultNbdSocket(pointView ? `${name}@${pointView.name}` : snapshot === undefined ? name : `${name}@${snapshot}`);
  } catch (e) {
    if (ownsVolume) await closeOwned();
    throw e;
  }
  const children = source instanceof Volume || !volume.readOnly || pointView ? [] : await startChildren(source.dir, name, snapshot, options.processes ?? 0, { idleTimeoutMs: limits.idleTimeoutMs, handshakeTimeoutMs: limits.handshakeTimeoutMs, tls: options.tls ? toWire(options.tls) : null }).catch(async (e) => {
    if (ownsVolume) await closeOwned();
    throw e;
  });
  let nextChild = 0;
  /** every connection open in this process (its socket is the TLS one once upgraded) */
  const sockets = new Set<Conn>();
  /** connections handed to each serving process and not yet closed there */
  const handed = new Map<ChildProcess, number>();
  const handedOver = () => {
    let n = 0;
    for (const k of handed.values()) n += k;
    return n;
  };
  for (const c of children) {
    handed.set(c, 0);
    c.on('message', (m: WorkerReply) => {
      if (m.type === 'ended') handed.set(c, Math.max(0, (handed.get(c) ?? 0) - 1));
    });
    c.once('exit', () => handed.set(c, 0));
  }
  const sessions = new Set<Transmission>();
  const pending = new Set<Promise<void>>();
  const pool = new BufferPool();
  let closing = false;
  /** volumes switched away from (closed at the end) */
  const retired: Volume[] = [];
  let switching: Promise<void> | undefined;

  const handle = async (conn: Conn): Promise<void> => {
    const raw = conn.socket;
    raw.setNoDelay(true);
    const hangUp = () => {
      conn.socket.destroy();
      raw.destroy();
    };
    // A client that connects and says nothing (or haggles forever) is cut off.
    const negotiated = deadline(limits.handshakeTimeoutMs, hangUp);
    try {
      let session;
      try {
        session = await negotiate(conn, registry, () => closing, tls);
      } finally {
        negotiated();
      }
      const { socket, reader } = conn;
      if (!session) {
        socket.end();
        return;
      }
      const child = children.length > 0 ? children[nextChild++ % children.length]! : undefined;
      if (child?.connected) {
        // Hand the connection over, with what the client already sent past the negotiation.
        if (socket.writableLength > 0) await new Promise((r) => socket.once('drain', r));
        const m: WorkerMessage = {
          type: 'conn',
          exportName: session.export.name,
          flags: session.flags,
          structuredReplies: session.structuredReplies,
          baseAllocationId: session.baseAllocationId,
          pending: reader.detach().toString('base64'),
        };
        handed.set(child, (handed.get(child) ?? 0) + 1);
        await new Promise<void>((r, reject) =>
          child.send(m, socket, (e) => {
            if (e) {
              handed.set(child, Math.max(0, (handed.get(child) ?? 0) - 1));
              reject(e);
            } else r();
          }),
        );
        return;
      }
      const t = new Transmission(socket, reader, session, pool, () => switching);
      closeWhenIdle(socket, limits.idleTimeoutMs, () => t.busy, hangUp);
      t.onDamage = options.onDamage;
      t.onRequestError = options.onRequestError;
      // negotiated on a volume switched away from in the meantime: serve the current one
      t.retarget((e) => registry.current(e));
      await t.runListed(sessions);
    } catch (e) {
      // Bad magic, absurd lengths, a vanished client: this connection ends, nothing else does.
      if (!(e instanceof Error && e.name === 'ConnectionEnded')) options.onConnectionError?.(e as Error);
      hangUp();
    }
  };

  // With TLS, serving processes take each connection as accepted (this process never reads it).
  const acceptInChildren = tls !== undefined && children.length > 0;
  const handOverAccepted = (socket: Socket) => {
    const child = children[nextChild++ % children.length]!;
    if (!child.connected) {
      socket.destroy();
      return;
    }
    handed.set(child, (handed.get(child) ?? 0) + 1);
    child.send({ type: 'accept' } satisfies WorkerMessage, socket, (e) => {
      if (e) {
        handed.set(child, Math.max(0, (handed.get(child) ?? 0) - 1));
        socket.destroy();
      }
    });
  };

  const server: Server = createServer({ pauseOnConnect: acceptInChildren }, (socket) => {
    socket.on('error', () => {}); // reported through the reader; never crash the process
    if (closing) {
      socket.destroy();
      return;
    }
    const open = sockets.size + handedOver();
    if (open >= limits.maxConnections) {
      socket.destroy();
      options.onConnectionRefused?.(open);
      return;
    }
    if (acceptInChildren) {
      handOverAccepted(socket);
      return;
    }
    const conn: Conn = { socket, reader: new SocketReader(socket) };
    sockets.add(conn);
    const p = handle(conn).finally(() => {
      sockets.delete(conn);
      pending.delete(p);
    });
    pending.add(p);
  });

  try {
    // A socket left by a server that died is removed first (never one in use, never a non-socket).
    if (socketPath !== undefined) {
      await listenOnSocket(server, socketPath, 'NBD socket');
      await makeSocketPrivate(socketPath);
    } else {
      await new Promise<void>((resolvePromise, reject) => {
        server.once('error', reject);
        server.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' }, () => resolvePromise());
      });
    }
  } catch (e) {
    await stopChildren(children);
    if (ownsVolume) await closeOwned();
    if (e instanceof StrataError) throw e;
    const err = e as NodeJS.ErrnoException;
    const where = socketPath ?? `${options.host ?? '127.0.0.1'}:${options.port ?? 0}`;
    throw new StrataError(err.code === 'EADDRINUSE' ? 'exists' : 'io', `Cannot listen on ${where}: ${err.message}`, { cause: e });
  }

  let uri: string;
  let port = 0;
  const scheme = tls ? 'nbds' : 'nbd';
  if (socketPath !== undefined) {
    uri = `${scheme}+unix:///?socket=${uriEscape(socketPath)}`;
  } else {
    const a = server.address() as AddressInfo;
    port = a.port;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    uri = `${scheme}://${host}:${port}/`;
  }

  const switchTo = (next: Volume) => {
    if (next.size !== volume.size || next.blockSize !== volume.blockSize) {
      throw new StrataError('invalid-argument', `Cannot switch the NBD export to a volume of another shape (${next.size} bytes in ${next.blockSize}-byte blocks, not ${volume.size} in ${volume.blockSize}).`);
    }
    retired.push(volume);
    volume = next;
    registry.switchTo(next);
    for (const t of sessions) t.retarget((e) => registry.current(e));
  };

  let closed: Promise<void> | undefined;
  return {
    uri,
    port,
    ...(socketPath !== undefined ? { socket: socketPath } : {}),
    tls: tls !== undefined,
    get volume() {
      return volume;
    },
    get connections() {
      return sockets.size + handedOver();
    },
    switchOver(next) {
      const done: Promise<void> = next
        .then(
          (v) => {
            if (!v) return;
            if (closing) return void v.close().catch(() => {});
            switchTo(v);
          },
          () => {},
        )
        .finally(() => {
          if (switching === done) switching = undefined;
        });
      switching = done;
      return done;
    },
    close() {
      closed ??= (async () => {
        closing = true;
        const stopped = new Promise<void>((r) => server.close(() => r()));
        for (const t of sessions) t.stop();
        // Let requests already read finish, then hang up on everyone.
        const grace = new Promise<void>((r) => setTimeout(r, CLOSE_GRACE_MS).unref());
        await Promise.race([Promise.allSettled([...sessions].map((t) => t.idle())), grace]);
        for (const c of sockets) c.socket.destroy();
        await Promise.race([Promise.allSettled([...pending]), grace]);
        await stopChildren(children);
        await stopped;
        if (socketPath !== undefined) await unlink(socketPath).catch(() => {});
        await switching?.catch(() => {});
        if (!volume.readOnly) await volume.flush();
        await pointJournal?.close();
        if (ownsVolume || retired.length > 0) await volume.close();
        for (const [i, old] of retired.entries()) if (i > 0 || ownsVolume) await old.close().catch(() => {});
      })();
      return closed;
    },
  };
}

/** A socket path as the query value of an nbd+unix URI: only unreserved characters and '/' as they are. */
function uriEscape(path: string): string {
  return path.replace(/[^A-Za-z0-9._~/-]/g, (c) => [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

/** The child process entry (built JavaScript next to this module), or null when run from sources. */
function workerScript(): string | null {
  const path = fileURLToPath(new URL('./process-worker.js', import.meta.url));
  return existsSync(path) ? path : null;
}

/** Fork `n` children serving `dir` read-only; resolves once each has opened the volume. */
async function startChildren(dir: string, name: string, snapshot: string | undefined, n: number, settings: Pick<Extract<WorkerMessage, { type: 'init' }>, 'idleTimeoutMs' | 'handshakeTimeoutMs' | 'tls'>): Promise<ChildProcess[]> {
  const script = n > 0 ? workerScript() : null;
  if (!script) return [];
  const children: ChildProcess[] = [];
  try {
    await Promise.all(
      Array.from({ length: n }, async () => {
        const c = fork(script, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
        children.push(c);
        const ready = new Promise<void>((ok, reject) => {
          c.once('message', (m: WorkerReply) => (m.type === 'ready' ? ok() : reject(new StrataError('io', `An NBD serving process could not open ${dir}: ${m.type === 'failed' ? m.message : m.type}`))));
          c.once('exit', (code) => reject(new StrataError('io', `An NBD serving process exited (${code}) before it was ready.`)));
          c.once('error', reject);
        });
        c.send({ type: 'init', dir: resolve(dir), name, snapshot: snapshot ?? null, syncMaxBytes: PROCESS_SYNC_MAX_BYTES, ...settings } satisfies WorkerMessage);
        await ready;
      }),
    );
  } catch (e) {
    await stopChildren(children);
    throw e;
  }
  return children;
}

/** Ask each child to finish its requests and exit; kill the ones that do not within the grace time. */
async function stopChildren(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      // a send to a child whose channel broke reports to the callback (not as an unheard 'error' event)
      c.send({ type: 'close' } satisfies WorkerMessage, (e) => {
        if (e) c.kill();
      });
      const t = setTimeout(() => c.kill(), CLOSE_GRACE_MS);
      await exited;
      clearTimeout(t);
    }),
  );
}
