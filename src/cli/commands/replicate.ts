import { once } from 'node:events';
import { resolve } from 'node:path';
import { serveNbd, type NbdServer } from '../../interop/nbd/index.js';
import { isNoControlSocket, requestControl, serveControl, type ControlServer } from '../../jobs/control.js';
import { replicaScheme } from '../../replication/dial.js';
import { primaryReplicationControl } from '../../replication/host-control.js';
import { parseReplicaUrl, refusePlain } from '../../replication/links/url.js';
import { ReplicationHost } from '../../replication/node-host.js';
import type { Command, Context } from '../command.js';
import { line, UsageError } from '../io.js';
import type { Progress } from '../progress.js';
import { readReplicaToken, REPLICA_TOKEN_ENV, REPLICA_TOKEN_OPTIONS } from '../replica-token.js';
import { closeReplicatedServer } from '../replication-shutdown.js';
import { parsePort } from '../server-options.js';
import { openVolume } from '../target.js';

export const replicateCommand: Command = {
  name: 'replicate',
  summary: 'copy every write of a volume to a secondary (`serve-replica`), sync or async',
  usage: 'replicate SRC DST_URL [--sync|--async] [--group G] [--policy run|block] [--name N] [--ca FILE] [--token-file FILE] [--nbd-socket PATH | --nbd-port P --insecure]',
  details: [
    'DST_URL is what `stratadisk serve-replica` printed: tcp://HOST:PORT (loopback only),',
    'tls://HOST:PORT, ws://HOST:PORT/replica (loopback only) or wss://HOST:PORT/replica.',
    'When a process holds SRC (serve-nbd, or another replicate), the session runs in that process',
    '(through its control socket) and this command returns once the initial resync is done.',
    'Otherwise this command holds SRC: it serves SRC over NBD (so a VM can write while it',
    'replicates; the URI is printed) and replicates until Ctrl-C or SIGTERM, then ends in order',
    'and says what is out of sync (kept in the session\'s bitmap; the next run resyncs only that).',
    '  --sync          a write completes when the secondary has it durably (default; DRBD protocol C)',
    '  --async         a write completes at once; the secondary follows in order (protocol A)',
    '  --group G       consistency group (default "default"): when any session fails, every session',
    '                  of every group freezes, so the secondaries hold one point in time',
    '  --policy P      while frozen, writes go on recorded out of sync (run, default) or wait (block)',
    '  --name N        the session\'s name (default HOST-PORT of the URL); its bitmap and activity log',
    '                  are replication.N.oos and replication.N.al in SRC',
    '  --ca FILE       PEM CA that signed the secondary\'s certificate (tls://, wss://)',
    '  --nbd-socket PATH  serve SRC on this Unix socket (default: a private one, printed)',
    '  --nbd-port P    serve SRC over plain TCP on 127.0.0.1 (needs --insecure; see serve-nbd)',
    `Token: $${REPLICA_TOKEN_ENV} or --token-file FILE (0600), the same as the secondary's.`,
    'Example: stratadisk replicate vol tls://backup.example:7788 --ca ca.pem --async',
  ].join('\n'),
  options: {
    sync: { type: 'boolean' },
    async: { type: 'boolean' },
    group: { type: 'string' },
    policy: { type: 'string' },
    name: { type: 'string' },
    ca: { type: 'string' },
    'nbd-socket': { type: 'string' },
    'nbd-port': { type: 'string' },
    insecure: { type: 'boolean' },
    ...REPLICA_TOKEN_OPTIONS,
  },
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const { io, args, values } = ctx;
    const [src, url] = [args[0]!, args[1]!];
    if (values.sync === true && values.async === true) throw new UsageError('give --sync or --async, not both', 'replicate');
    const mode = values.async === true ? 'async' : 'sync';
    const policy = values.policy === undefined ? 'run' : values.policy;
    if (policy !== 'run' && policy !== 'block') throw new UsageError(`--policy: "${String(policy)}" is not run or block`, 'replicate');
    if (values['nbd-socket'] !== undefined && values['nbd-port'] !== undefined) throw new UsageError('give --nbd-socket or --nbd-port, not both', 'replicate');
    if (values['nbd-port'] !== undefined && values.insecure !== true) throw new UsageError('--nbd-port serves plain TCP that every local user can read and write: add --insecure, or use the default Unix socket (or serve-nbd with TLS and `replicate` attaching to it)', 'replicate');
    // the URL is checked before anything opens: plain transport stays on loopback
    const scheme = replicaScheme(url);
    const { host } = parseReplicaUrl(url, [scheme]);
    if (scheme === 'tcp' || scheme === 'ws') refusePlain(host, 'client', scheme === 'tcp' ? 'tls' : 'wss');
    const token = await readReplicaToken(values, io, 'replicate');
    const caFile = typeof values.ca === 'string' ? resolve(values.ca) : undefined;
    const spec = {
      url,
      token,
      mode,
      policy,
      ...(typeof values.group === 'string' ? { group: values.group } : {}),
      ...(typeof values.name === 'string' ? { name: values.name } : {}),
      ...(caFile !== undefined ? { caFile } : {}),
    } as const;

    // a process holds SRC: it runs the session
    let bar: Progress | undefined;
    try {
      const last = await requestControl(
        src,
        { op: 'replicate', ...spec },
        (m) => {
          if (m.type !== 'replication') return;
          if (m.text) line(io.stderr, `stratadisk: replicate: ${m.text}`);
          if (m.progress) {
            bar ??= ctx.progress(`resync ${m.progress.session}`, m.progress.total);
            bar.update(m.progress.done);
          }
        },
        ctx.signal,
      );
      bar?.finish();
      const status = last.type === 'replication' ? (last.status as { sessions?: { name: string; state: string; outOfSyncBytes: number }[] } | null) : null;
      const mine = status?.sessions?.find((s) => s.name === (spec as { name?: string }).name) ?? status?.sessions?.at(-1);
      line(io.stdout, `The process holding ${src} replicates it to ${url}${mine ? ` (session ${mine.name}: ${mine.state}, ${mine.outOfSyncBytes} bytes out of sync)` : ''}. Follow it with \`stratadisk replication status ${src}\`.`);
      return 0;
    } catch (e) {
      bar?.finish();
      if (!isNoControlSocket(e)) throw e;
    }
    return holdAndReplicate(ctx, src, spec);
  },
};

/** Nothing holds SRC: open it, serve it over NBD and replicate until Ctrl-C. */
async function holdAndReplicate(ctx: Context, src: string, spec: Parameters<ReplicationHost['add']>[0]): Promise<number> {
  const { io, values, signal } = ctx;
  const say = (text: string) => line(io.stderr, `stratadisk: replicate: ${text}`);
  const volume = await openVolume(src, false);
  let host: ReplicationHost | undefined;
  let nbd: NbdServer | undefined;
  let control: ControlServer | undefined;
  const bars = new Map<string, Progress>();
  try {
    host = await ReplicationHost.open(volume, {
      log: say,
      onEvent: (e) => {
        if (e.type !== 'progress') return;
        let bar = bars.get(e.session);
        if (!bar) bars.set(e.session, (bar = ctx.progress(`resync ${e.session}`, e.total * volume.blockSize)));
        bar.update(e.done * volume.blockSize);
        if (e.done >= e.total) {
          bar.finish();
          bars.delete(e.session);
        }
      },
    });
    const replication = primaryReplicationControl(() => volume);
    replication.adopt(host);
    nbd = await serveNbd(volume, {
      keepOpen: true,
      ...(typeof values['nbd-socket'] === 'string' ? { socket: values['nbd-socket'] } : {}),
      ...(typeof values['nbd-port'] === 'string' ? { port: parsePort(values['nbd-port'], 'replicate'), insecure: true } : {}),
      onConnectionError: (e) => say(`an NBD connection was closed: ${e.message}`),
      onRequestError: (e) => say(`an NBD request failed: ${e.message} (the client got EIO)`),
    });
    control = await serveControl(volume, src, undefined, { replication, onRefused: (r) => say(r) }).catch((e: Error) => {
      say(`no control socket (${e.message}); \`replication status\` cannot reach this process.`);
      return undefined;
    });
    const session = await host.add(spec);
    line(io.stdout, nbd.uri);
    say(`serving ${src} over NBD at ${nbd.uri} while replicating it to ${spec.url} (session ${session.name}, ${session.mode}); Ctrl-C stops both in order.`);
    void session.synced().then(
      () => say(`session ${session.name}: the secondary holds everything; writes now stream ${session.mode === 'sync' ? 'synchronously' : 'asynchronously'}.`),
      () => {},
    );
    const term = new AbortController();
    const onTerm = () => term.abort();
    process.on('SIGTERM', onTerm);
    try {
      if (!signal.aborted && !term.signal.aborted) await Promise.race([once(signal, 'abort'), once(term.signal, 'abort')]);
    } finally {
      process.off('SIGTERM', onTerm);
    }
  } finally {
    for (const b of bars.values()) b.finish();
    await control?.close();
    if (nbd) await closeReplicatedServer(nbd, host ?? null, say, () => volume.close());
    else {
      await host?.close();
      await volume.close();
    }
  }
  say('stopped; the volume was flushed and closed.');
  return 0;
}
