import { once } from 'node:events';
import { serveNbd } from '../../interop/nbd/index.js';
import { readCertificateDir, readPskFile, readableByOthers, type NbdTls } from '../../interop/nbd/tls.js';
import { serveNbdControl, type NbdControl } from '../../interop/nbd/control.js';
import type { Command } from '../command.js';
import { line, UsageError } from '../io.js';
import { parseTarget } from '../target.js';
import type { DiffPoint } from '../../journal/diff.js';
import { parseBarePoint } from '../point-target.js';
import { primaryReplicationControl, type PrimaryControl } from '../../replication/host-control.js';
import { closeReplicatedServer } from '../replication-shutdown.js';

export const serveNbdCommand: Command = {
  name: 'serve-nbd',
  summary: 'serve the volume (or a snapshot) over NBD to QEMU, nbdcopy, nbdinfo',
  usage: 'serve-nbd DIR[@NAME|@POINT] [--socket PATH | --port P [--host ADDR] (--tls-certificates DIR | --tls-psk FILE | --insecure)] [--read-only] [--processes N] [--dirty-since POINT [--bitmap NAME]]',
  details: [
    'Prints the URI to connect to, then serves until Ctrl-C or SIGTERM, and then flushes and',
    'closes the volume. Exports: "" (the default) and the directory\'s name are the live volume;',
    'each snapshot is an export of its own name, read-only. DIR@NAME serves that snapshot as the',
    'default export (read-only); DIR@seq:N, DIR@time:ISO or DIR@mark:LABEL serves that point of the',
    'volume\'s write log (read-only; see `stratadisk journal --help`). `stratadisk mirror DIR DST`',
    'run meanwhile moves the volume: at the end of the job this server serves DST instead, without',
    'dropping its clients.',
    'By default it listens on a Unix socket only you can reach (mode 0600, in a 0700 directory under',
    '$XDG_RUNTIME_DIR/stratadisk, or $TMPDIR/stratadisk-UID). TCP requires TLS, or --insecure.',
    '  --socket PATH   this Unix socket (made 0600; a stale one, left by a server that died, is',
    '                  replaced; one a process listens on, or a path that is not a socket, is refused)',
    '  --port P        TCP port (0: a free one), on 127.0.0.1 unless --host says otherwise',
    '  --host ADDR     TCP address to listen on (default 127.0.0.1)',
    '  --tls-certificates DIR  require TLS with X.509: DIR holds server-cert.pem, server-key.pem and',
    '                  ca-cert.pem; clients must present a certificate signed by that CA (as qemu-nbd)',
    '  --tls-no-client-cert    with --tls-certificates: accept clients without a certificate',
    '                  (encrypted, but whoever reaches the port can read and write the volume)',
    '  --tls-psk FILE  require TLS with pre-shared keys: lines "username:hexkey" (the keys.psk of',
    '                  qemu tls-creds-psk and nbdkit --tls-psk); keep the file 0600',
    '  --insecure      allow plain TCP without TLS. WARNING: every local user (and, with --host,',
    '                  every host that reaches the address) can then read and write the volume',
    '  --read-only     refuse every write',
    '  --processes N   read-only only: serve connections from N child processes (several cores for',
    '                  clients with several connections, such as nbdcopy); default 0',
    '  --handshake-timeout S  close a connection that has not finished negotiating in S seconds',
    '                  (default 10)',
    '  --idle-timeout S  close a connection idle for S seconds (default: never)',
    '  --max-connections N  connections open at once; more are closed at once (default 64)',
    '  --dirty-since POINT  serve what changed since POINT (a snapshot name, seq:N, time:ISO,',
    '                  mark:LABEL; see `diff`) as the meta context qemu:dirty-bitmap:NAME of the',
    '                  default export (read `nbdinfo --map=qemu:dirty-bitmap:NAME URI`). Needs a',
    '                  fixed view: --read-only, DIR@NAME or DIR@POINT; not with --processes',
    '  --bitmap NAME   the NAME of that context (default: POINT as written)',
    'Examples: stratadisk serve-nbd vol   (then: qemu-img info "nbd+unix:///?socket=PATH")',
    '  stratadisk serve-nbd vol --port 10809 --tls-certificates /etc/pki/stratadisk',
    '  nbdcopy "nbds://localhost:10809/?tls-certificates=/etc/pki/client" out.raw',
  ].join('\n'),
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    socket: { type: 'string' },
    'read-only': { type: 'boolean' },
    processes: { type: 'string' },
    'tls-certificates': { type: 'string' },
    'tls-no-client-cert': { type: 'boolean' },
    'tls-psk': { type: 'string' },
    insecure: { type: 'boolean' },
    'handshake-timeout': { type: 'string' },
    'idle-timeout': { type: 'string' },
    'max-connections': { type: 'string' },
    'dirty-since': { type: 'string' },
    bitmap: { type: 'string' },
  },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal }) {
    const target = parseTarget(args[0]!, true, 'serve-nbd');
    if (values.port !== undefined && values.socket !== undefined) throw new UsageError('give --port or --socket, not both', 'serve-nbd');
    let port: number | undefined;
    if (typeof values.port === 'string') {
      port = Number(values.port);
      if (!/^[0-9]+$/.test(values.port) || port > 65535) throw new UsageError(`--port: "${values.port}" is not a port number (0-65535)`, 'serve-nbd');
    }
    let processes: number | undefined;
    if (typeof values.processes === 'string') {
      processes = Number(values.processes);
      if (!/^[0-9]+$/.test(values.processes) || processes > 64) throw new UsageError(`--processes: "${values.processes}" is not a number from 0 to 64`, 'serve-nbd');
    }
    if (target.point !== undefined && processes !== undefined && processes > 0) throw new UsageError('--processes serves snapshots and the live volume; a point of the write log is served from this process (drop --processes)', 'serve-nbd');
    const dirtySince = dirtySinceOption(values['dirty-since'], values.bitmap);
    const certDir = values['tls-certificates'];
    const pskFile = values['tls-psk'];
    const insecure = values.insecure === true;
    if (typeof certDir === 'string' && typeof pskFile === 'string') throw new UsageError('give --tls-certificates or --tls-psk, not both', 'serve-nbd');
    const wantsTls = typeof certDir === 'string' || typeof pskFile === 'string';
    if (values['tls-no-client-cert'] === true && typeof certDir !== 'string') throw new UsageError('--tls-no-client-cert goes with --tls-certificates', 'serve-nbd');
    if (insecure && wantsTls) throw new UsageError('--insecure serves without TLS: drop it, or the TLS options', 'serve-nbd');
    const tcp = values.socket === undefined && (values.port !== undefined || values.host !== undefined);
    if (tcp && !wantsTls && !insecure) {
      throw new UsageError('TCP needs TLS: add --tls-certificates DIR or --tls-psk FILE (or serve on a Unix socket: drop --port/--host). --insecure serves plain TCP that every local user can read and write.', 'serve-nbd');
    }
    const seconds = (flag: string): number | undefined => {
      const v = values[flag];
      if (typeof v !== 'string') return undefined;
      const n = Number(v);
      if (!/^[0-9]+(\.[0-9]+)?$/.test(v) || n > 86_400 * 365) throw new UsageError(`--${flag}: "${v}" is not a number of seconds`, 'serve-nbd');
      return n * 1000;
    };
    const handshakeTimeoutMs = seconds('handshake-timeout');
    const idleTimeoutMs = seconds('idle-timeout');
    let maxConnections: number | undefined;
    if (typeof values['max-connections'] === 'string') {
      maxConnections = Number(values['max-connections']);
      if (!/^[0-9]+$/.test(values['max-connections']) || maxConnections < 1 || maxConnections > 65_536) throw new UsageError(`--max-connections: "${values['max-connections']}" is not a number from 1 to 65536`, 'serve-nbd');
    }
    let tls: NbdTls | undefined;
    if (typeof certDir === 'string') {
      tls = readCertificateDir(certDir, values['tls-no-client-cert'] !== true);
      if (readableByOthers(`${certDir}/server-key.pem`)) line(io.stderr, `stratadisk: serve-nbd: warning: ${certDir}/server-key.pem can be read by other users; \`chmod 600\` it.`);
      if (values['tls-no-client-cert'] === true) line(io.stderr, 'stratadisk: serve-nbd: warning: --tls-no-client-cert: clients are not authenticated; whoever reaches the port can read and write the volume.');
    } else if (typeof pskFile === 'string') {
      tls = { psk: readPskFile(pskFile) };
      if (readableByOthers(pskFile)) line(io.stderr, `stratadisk: serve-nbd: warning: the PSK file ${pskFile} can be read by other users; \`chmod 600\` it.`);
    }
    const server = await serveNbd(target, {
      ...(processes !== undefined ? { processes } : {}),
      ...(tls ? { tls } : {}),
      ...(insecure ? { insecure } : {}),
      ...(handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs } : {}),
      ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      onConnectionRefused: (open) => line(io.stderr, `stratadisk: serve-nbd: refused a connection: ${open} are open (--max-connections)`),
      ...(port !== undefined ? { port } : {}),
      ...(typeof values.host === 'string' ? { host: values.host } : {}),
      ...(typeof values.socket === 'string' ? { socket: values.socket } : {}),
      readOnly: values['read-only'] === true,
      ...(dirtySince ? { dirtySince } : {}),
      onConnectionError: (e) => line(io.stderr, `stratadisk: serve-nbd: a connection was closed: ${e.message}`),
      onDamage: (e) => line(io.stderr, `stratadisk: serve-nbd: ${e.message} (the client got EIO)`),
      onRequestError: (e) => line(io.stderr, `stratadisk: serve-nbd: a request failed: ${e.message} (the client got EIO)`),
    });
    line(io.stdout, server.uri);
    if (insecure && !server.socket) {
      line(io.stderr, `stratadisk: serve-nbd: WARNING: --insecure: ${server.uri} has no TLS and no authentication; every local user${values.host !== undefined ? ' and every host that reaches it' : ''} can read and write this volume.`);
    }
    // A writable server also takes job requests (delete-snapshot, commit, mirror, jobs) from
    // other `stratadisk` processes, through a control socket in the volume directory; after a
    // mirror it serves the copy (and the socket moves to the copy's directory).
    let control: NbdControl | undefined;
    // `stratadisk replicate DIR URL` run meanwhile starts replication sessions in this process
    let replication: PrimaryControl | undefined;
    if (!server.volume.readOnly && target.snapshot === undefined) {
      replication = primaryReplicationControl(() => server.volume, { log: (text) => line(io.stderr, `stratadisk: serve-nbd: ${text}`) });
      try {
        control = await serveNbdControl(server, target.dir, (e) => line(io.stderr, `stratadisk: serve-nbd: ${e.message}`), { replication });
      } catch (e) {
        line(io.stderr, `stratadisk: serve-nbd: no control socket (${(e as Error).message}); online jobs are unavailable.`);
      }
    }
    // Ctrl-C arrives as `signal`; SIGTERM (service managers, kill) is handled here.
    const term = new AbortController();
    const onTerm = () => term.abort();
    process.on('SIGTERM', onTerm);
    try {
      if (!signal.aborted && !term.signal.aborted) {
        await Promise.race([once(signal, 'abort'), once(term.signal, 'abort')]);
      }
    } finally {
      process.off('SIGTERM', onTerm);
      await control?.close();
      await closeReplicatedServer(server, replication?.host ?? null, (text) => line(io.stderr, `stratadisk: serve-nbd: ${text}`));
    }
    line(io.stderr, 'stratadisk: serve-nbd: stopped; the volume was flushed and closed.');
    return 0;
  },
};

/** `--dirty-since POINT [--bitmap NAME]` as serveNbd's dirtySince. */
function dirtySinceOption(since: string | boolean | undefined, bitmap: string | boolean | undefined): { point: DiffPoint; name: string } | undefined {
  if (typeof bitmap === 'string' && typeof since !== 'string') throw new UsageError('--bitmap names the dirty bitmap of --dirty-since POINT', 'serve-nbd');
  if (typeof since !== 'string') return undefined;
  const name = typeof bitmap === 'string' ? bitmap : since;
  if (!/^[\x21-\x7e]{1,256}$/.test(name)) throw new UsageError(`--bitmap: "${name}" must be 1 to 256 printable characters without spaces`, 'serve-nbd');
  return { point: parseBarePoint(since, '--dirty-since', 'serve-nbd'), name };
}
