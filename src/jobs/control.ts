/**
 * The control socket (Node): how `stratadisk delete-snapshot`, `commit` and `jobs` reach a
 * volume that another process holds open for writing (volumes have one writer; `serve-nbd` is
 * the usual long-lived one). The writer listens on a Unix socket `.stratadisk.sock` in the
 * volume directory; each connection sends one JSON request line and gets JSON lines back: a
 * job's progress while it runs, then its end. Disconnecting cancels a job the connection
 * started (like Ctrl-C on a local job).
 *
 * The owner's alone. Whoever gets in can copy the disk elsewhere, delete snapshots and move the
 * served volume, so: the socket is 0600, bound in a private 0700 directory and linked to
 * DIR/.stratadisk.sock only then (src/util/unix-socket.ts; the path stays where clients have
 * always looked for it); every connection must prove it runs as the server's user before its
 * request is read, and the client checks the server the same way before sending it
 * (src/util/socket-auth.ts); a mirror's target directory must be the server's user's own and
 * hold nothing but regular files (./target-check.ts).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { StrataError, type ErrorCode } from '../errors.js';
import { acceptPeer, createSocketKey, peerAuthApplies, provePeer, type SocketKey } from '../util/socket-auth.js';
import { listenOnSocket, MAX_SOCKET_PATH } from '../util/unix-socket.js';
import type { Volume } from '../volume/volume.js';
import { NodeDirNamespace, type NodeDirOptions } from '../store/node-dir.js';
import { RemoteNamespace } from '../store/remote.js';
import { consolidate, type Direction } from './consolidate.js';
import { mirror, type MirrorJob } from './mirror.js';
import type { Job, JobInfo } from './job.js';
import { JobRegistry } from './registry.js';
import { checkMirrorTarget } from './target-check.js';

export const CONTROL_SOCKET = '.stratadisk.sock';
/** One request is a short JSON line; anything longer is not ours. */
const MAX_REQUEST = 64 * 1024;

export type ControlRequest =
  | { op: 'jobs' }
  | { op: 'delete-snapshot'; name: string; direction?: 'auto' | Direction }
  | { op: 'commit'; dropSnapshot?: boolean }
  /** copy the served volume to directory `target`: a point-in-time copy as of the job's end, or, where the server switches over (ControlOptions.onSwitchOver), the volume it serves from then on */
  | { op: 'mirror'; target: string; flatten?: boolean }
  | { op: 'pause' | 'resume' | 'cancel'; id: string }
  | { op: 'rate'; id: string; bytesPerSecond: number | null }
  | ReplicationRequest;

/** Replication requests (answered by ControlOptions.replication; see src/replication/control.ts). */
export type ReplicationRequest =
  /** start a session from the served volume to `url`; `token` is the requester's (never logged or echoed) */
  | { op: 'replicate'; url: string; token: string; mode?: 'sync' | 'async'; group?: string; policy?: 'run' | 'block'; name?: string; caFile?: string }
  | { op: 'replication-status' }
  | { op: 'replication-freeze' }
  | { op: 'replication-resume' }
  | { op: 'replication-promote'; force?: boolean; revertToConsistent?: boolean };

export type ControlMessage =
  | { type: 'jobs'; jobs: JobInfo[] }
  | { type: 'progress'; info: JobInfo }
  | { type: 'end'; info: JobInfo }
  | { type: 'ok' }
  /** replication: a status snapshot, or a line of what happened (a session's progress, state) */
  | { type: 'replication'; status?: unknown; text?: string; progress?: { session: string; done: number; total: number } }
  | { type: 'error'; code: ErrorCode; message: string };

/** How a process that replicates answers replication requests on its control socket. */
export interface ReplicationControl {
  /** Answer `req`, sending messages with `send`; resolves when the answer is complete. `gone` fires when the requester hangs up. */
  handle(req: ReplicationRequest, send: (m: ControlMessage) => void, gone: AbortSignal): Promise<void>;
  /** Refuse block jobs (a secondary takes writes from its primary only). */
  refuseJobs?: boolean;
  /** Why the served volume must not move to a mirror's copy now (its sessions would be left behind), or null. */
  pinned?(): string | null;
}

export interface ControlOptions {
  /**
   * Mirror requests switch the volume over to the copy (MirrorOptions.switchOver) and this is
   * called with each such job as it starts, and the copy's directory: the caller serves
   * `job.target` once `job.done` resolves. The requester is told the job ended only once the
   * promise it may return settles (e.g. the control socket moved to the copy). Without it, a mirror leaves a point-in-time copy and
   * the source in use.
   */
  onSwitchOver?: (job: MirrorJob, targetDir: string) => void | Promise<void>;
  /** Options of a mirror's target namespace (e.g. syncMaxBytes for the copy served next). */
  targetOptions?: Omit<NodeDirOptions, 'create' | 'readOnly'>;
  /** Told of each connection refused (a peer that is not the server's user), for the server's log. */
  onRefused?: (reason: string) => void;
  /** Replication requests (replicate, replication-*); without it they are refused. */
  replication?: ReplicationControl;
}

export interface ControlServer {
  readonly path: string;
  readonly registry: JobRegistry;
  /** control connections open now (requests being answered, jobs being followed) */
  readonly connections: number;
  /** Stop listening, cancel running jobs, remove the socket file. */
  close(): Promise<void>;
}

/** Listen on `dir/.stratadisk.sock` for job requests on `volume` (which must be writable). */
export async function serveControl(volume: Volume, dir: string, registry = new JobRegistry(), options: ControlOptions = {}): Promise<ControlServer> {
  const path = join(dir, CONTROL_SOCKET);
  const conns = new Set<Socket>();
  // Connections wait for the key: it is written once the socket is in place (never before a
  // connection could be challenged with it), and none is admitted without it.
  let setKey!: (k: SocketKey | null) => void;
  const key = new Promise<SocketKey | null>((r) => (setKey = r));
  const server: Server = createServer((sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => {});
    sock.pause();
    void key
      .then((k) => acceptPeer(sock, k, 'control socket', options.onRefused))
      .then((ok) => {
        if (ok) handle(sock, volume, registry, options);
      });
  });
  // A socket left by a process that died is removed; one that answers means another process serves jobs here.
  const listening = await listenOnSocket(server, path, 'control socket');
  try {
    setKey(await createSocketKey(listening));
  } catch (e) {
    for (const c of conns) c.destroy();
    await new Promise((r) => server.close(r));
    throw e;
  }
  let closed: Promise<void> | undefined;
  return {
    path,
    registry,
    get connections() {
      return conns.size;
    },
    close() {
      closed ??= (async () => {
        const stopped = new Promise<void>((r) => server.close(() => r()));
        await registry.cancelAll();
        for (const c of conns) c.destroy();
        await stopped; // removes the socket file and its private directory
      })();
      return closed;
    },
  };
}

function handle(sock: Socket, volume: Volume, registry: JobRegistry, options: ControlOptions): void {
  let buf = '';
  let started = false;
  const send = (m: ControlMessage) => {
    if (!sock.destroyed) sock.write(JSON.stringify(m) + '\n');
  };
  const fail = (e: unknown) => {
    const err = e instanceof StrataError ? e : new StrataError('io', String((e as Error)?.message ?? e));
    send({ type: 'error', code: err.code, message: err.message });
    sock.end();
  };
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    if (started) return;
    buf += chunk;
    if (buf.length > MAX_REQUEST) return fail(new StrataError('invalid-argument', 'The control request is too long.'));
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    started = true;
    let req: ControlRequest;
    try {
      req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
    } catch {
      return fail(new StrataError('invalid-argument', 'The control request is not JSON.'));
    }
    if (typeof req?.op === 'string' && (req.op === 'replicate' || req.op.startsWith('replication-'))) {
      const gone = new AbortController();
      sock.on('close', () => gone.abort());
      const r = options.replication;
      if (!r) return fail(new StrataError('unsupported', 'The process holding this volume does not replicate (it is not a `serve-nbd`, `replicate` or `serve-replica` of this release).'));
      void r.handle(req as ReplicationRequest, send, gone.signal).then(() => sock.end(), fail);
      return;
    }
    if (options.replication?.refuseJobs) return fail(new StrataError('locked', 'This volume is a replication secondary served by `stratadisk serve-replica`: it takes writes from its primary only. Run block jobs on the primary, or promote this side first.'));
    void (async () => {
      // A mirror's target is checked (and created) before the job starts.
      if (req?.op === 'mirror' && typeof req.target === 'string' && isAbsolute(req.target)) await checkMirrorTarget(req.target, { create: true });
      if (sock.destroyed) return null; // the requester hung up meanwhile
      return dispatch(req, volume, registry, send, options);
    })().then((job) => {
      if (!job) return void sock.end();
      const off = job.on((ev) => send({ type: 'progress', info: ev.info }));
      sock.on('close', () => job.cancel());
      job.done.then(
        async () => {
          off();
          await moved.get(job);
          send({ type: 'end', info: job.info() });
          sock.end();
        },
        (e) => {
          off();
          fail(e);
        },
      );
    }, fail);
  });
  sock.resume();
}

/** Mirror jobs whose requester is told of the end only once the server switched over (ControlOptions.onSwitchOver). */
const moved = new WeakMap<Job, Promise<void>>();

function dispatch(req: ControlRequest, volume: Volume, registry: JobRegistry, send: (m: ControlMessage) => void, options: ControlOptions = {}): Job | null {
  switch (req?.op) {
    case 'jobs':
      send({ type: 'jobs', jobs: registry.list() });
      return null;
    case 'delete-snapshot':
      if (typeof req.name !== 'string') throw new StrataError('invalid-argument', 'delete-snapshot needs a snapshot name.');
      return registry.add(consolidate(volume, { op: 'delete-snapshot', name: req.name }, { direction: req.direction ?? 'auto', journal: true }));
    case 'commit':
      return registry.add(consolidate(volume, { op: 'commit', dropSnapshot: req.dropSnapshot === true }, { journal: true }));
    case 'mirror': {
      // a store server's URL (stratadisk serve-store), or an absolute directory
      const remote = typeof req.target === 'string' && /^https?:\/\//.test(req.target);
      if (typeof req.target !== 'string' || (!remote && !isAbsolute(req.target))) throw new StrataError('invalid-argument', 'mirror needs an absolute target directory or a store server URL.');
      const ns = remote ? new RemoteNamespace(req.target) : new NodeDirNamespace(req.target, { ...options.targetOptions, create: true });
      // A served volume follows a mirror to a local directory (serve-nbd switches over); a copy
      // on a store server is a point-in-time copy as of the job's end.
      const switchOver = options.onSwitchOver !== undefined && !remote;
      const pinned = switchOver ? options.replication?.pinned?.() : null;
      if (pinned) throw new StrataError('locked', `${pinned} A mirror would move the served volume away from them: stop replication first (stop its \`replicate\` sessions by stopping this server), or mirror to a store server for a point-in-time copy.`);
      const job = registry.add(mirror(volume, ns, { flatten: req.flatten === true, switchOver, targetLabel: req.target.split('#')[0]! }));
      if (switchOver) moved.set(job, Promise.resolve(options.onSwitchOver?.(job, req.target)).catch(() => {}));
      return job;
    }
    case 'pause':
    case 'resume':
    case 'cancel':
    case 'rate': {
      const job = registry.get(String(req.id));
      if (!job) throw new StrataError('not-found', `No running job ${String(req.id)}. List them with \`stratadisk jobs DIR\`.`);
      if (req.op === 'pause') job.pause();
      else if (req.op === 'resume') job.resume();
      else if (req.op === 'cancel') job.cancel();
      else if (req.op === 'rate') job.setRateLimit(req.bytesPerSecond ?? undefined);
      send({ type: 'ok' });
      return null;
    }
    default:
      throw new StrataError('unsupported', `Unknown control request "${String((req as { op?: unknown })?.op)}".`);
  }
}

/** `not-found` errors that mean "nothing listens" (not a server's own `not-found` answer). */
const noServer = new WeakSet<StrataError>();

/** True when `e` says no process serves jobs for the directory (no control socket, or nothing listening). */
export function isNoControlSocket(e: unknown): boolean {
  return e instanceof StrataError && noServer.has(e);
}

/**
 * Send `req` to the process serving `dir`, calling `onMessage` for each message; resolves with
 * the last one (an `error` message rejects with its code). Rejects `not-found` when nothing
 * listens there, `permission-denied` when the server is another user's (or refuses us). The
 * request is sent only after both ends proved they run as the same user (src/util/socket-auth.ts).
 */
export function requestControl(dir: string, req: ControlRequest, onMessage: (m: ControlMessage) => void = () => {}, signal?: AbortSignal): Promise<ControlMessage> {
  const path = join(dir, CONTROL_SOCKET);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    return Promise.reject(new StrataError('invalid-argument', `The control socket path ${path} is too long for a Unix socket (at most ${MAX_SOCKET_PATH} bytes); no server can listen there.`));
  }
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    let last: ControlMessage | undefined;
    let failed: StrataError | undefined;
    const onAbort = () => sock.destroy();
    signal?.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => {
      (peerAuthApplies(path) ? provePeer(sock, path, 'control socket') : Promise.resolve()).then(
        () => {
          sock.setEncoding('utf8');
          sock.write(JSON.stringify(req) + '\n');
          sock.resume();
        },
        (e: unknown) => {
          failed = e instanceof StrataError ? e : new StrataError('io', `Control socket ${path}: ${(e as Error).message}`, { cause: e });
          sock.destroy();
        },
      );
    });
    sock.on('data', (chunk: string | Buffer) => {
      if (typeof chunk !== 'string') return; // the authentication's own lines (provePeer reads them)
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const lineText = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          last = JSON.parse(lineText) as ControlMessage;
        } catch {
          continue;
        }
        onMessage(last);
      }
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      signal?.removeEventListener('abort', onAbort);
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ENOTDIR') {
        const none = new StrataError('not-found', `No process serves jobs for ${dir} (no control socket).`);
        noServer.add(none);
        reject(none);
      }
      else if (e.code === 'EACCES' || e.code === 'EPERM') reject(new StrataError('permission-denied', `The control socket of ${dir} belongs to another user; only the user who started its server can send it jobs. Run the command as that user.`, { cause: e }));
      else reject(new StrataError('io', `Control socket ${path}: ${e.message}`, { cause: e }));
    });
    sock.once('close', () => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) return reject(new StrataError('aborted', 'Interrupted.'));
      if (failed) return reject(failed);
      if (!last) return reject(new StrataError('io', `The process serving ${dir} closed the control connection without an answer.`));
      if (last.type === 'error') return reject(new StrataError(last.code, last.message));
      resolve(last);
    });
  });
}
