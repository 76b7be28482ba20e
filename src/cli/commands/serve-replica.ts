import { once } from 'node:events';
import { prepareVolumeDir } from '../new-volume-dir.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { DEFAULT_BLOCK_SIZE, Volume } from '../../volume/volume.js';
import { serveControl, type ControlServer } from '../../jobs/control.js';
import { listenReplicaTcp, type ReplicaServer } from '../../replication/links/tcp.js';
import { listenReplicaWs } from '../../replication/links/websocket-server.js';
import { Secondary } from '../../replication/secondary.js';
import { secondaryReplicationControl } from '../../replication/secondary-control.js';
import { replicaDispatcher } from '../replica-resync.js';
import type { Command } from '../command.js';
import { line, UsageError, withKept } from '../io.js';
import { parsePort, readTlsOptions } from '../server-options.js';
import { parseSize } from '../size.js';
import { openVolume } from '../target.js';
import { readReplicaToken, REPLICA_TOKEN_ENV, REPLICA_TOKEN_OPTIONS } from '../replica-token.js';
import { isLoopback } from '../../util/loopback.js';

export const serveReplicaCommand: Command = {
  name: 'serve-replica',
  summary: 'be a replication secondary: apply the writes a primary (`replicate`) streams to DIR',
  usage: 'serve-replica DIR --port P [--host ADDR] [--tls-cert FILE --tls-key FILE] [--websocket] [--token-file FILE] [--create --size SIZE [--block-size SIZE]]',
  details: [
    'Listens for one primary at a time (`stratadisk replicate SRC URL`) and applies its writes to',
    'the volume in DIR, in order. Prints the URL to give `replicate`, then logs each session: who',
    'connected, resync begin and end, why it stopped. Ctrl-C or SIGTERM ends the session (what was',
    'applied is flushed) and closes the volume.',
    'It also serves `stratadisk resync SRC URL` (and `--verify`) on DIR, while no primary is',
    'connected (each refuses the other with `locked`). A resync that writes makes DIR forget its',
    'data generation: the next primary copies everything to it.',
    `The token: both sides hold the same secret, from $${REPLICA_TOKEN_ENV} or --token-file FILE`,
    '(mode 0600); never on the command line. Each connection proves it both ways before anything',
    'else crosses. Beyond loopback, TLS is required (--tls-cert/--tls-key; clients: tls:// or wss://).',
    '  --port P        TCP port (0: a free one, printed)',
    '  --host ADDR     address to listen on (default 127.0.0.1)',
    '  --tls-cert FILE --tls-key FILE  serve TLS 1.3 with this certificate and key (key 0600)',
    '  --websocket     accept WebSocket links (ws://, wss:// at /replica) instead of TCP',
    '  --create        create DIR first (an empty volume) when it does not exist: give --size',
    '                  and --block-size equal to the primary\'s',
    'While it runs, `stratadisk replication status DIR` shows the session and',
    '`stratadisk replication promote DIR` makes DIR a primary (failover) and stops serving.',
    'Example: STRATADISK_REPLICA_TOKEN=$(cat token) stratadisk serve-replica /srv/copy --port 7788 --create --size 10G',
  ].join('\n'),
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    websocket: { type: 'boolean' },
    create: { type: 'boolean' },
    size: { type: 'string' },
    'block-size': { type: 'string' },
    ...REPLICA_TOKEN_OPTIONS,
  },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal }) {
    const dir = args[0]!;
    const say = (text: string) => line(io.stderr, `stratadisk: serve-replica: ${text}`);
    if (values.port === undefined) throw new UsageError('--port is required (0 picks a free one)', 'serve-replica');
    const port = parsePort(values.port, 'serve-replica');
    const host = typeof values.host === 'string' ? values.host : '127.0.0.1';
    if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together', 'serve-replica');
    const tls = await readTlsOptions({ cert: values['tls-cert'], key: values['tls-key'] }, 'serve-replica');
    if (!tls && !isLoopback(host)) {
      throw new UsageError(`listening on ${host} without TLS would let anyone on the network read and change the replicated data: give --tls-cert FILE --tls-key FILE (clients then use tls://), or listen on 127.0.0.1`, 'serve-replica');
    }
    if ((values.size !== undefined || values['block-size'] !== undefined) && values.create !== true) throw new UsageError('--size and --block-size go with --create', 'serve-replica');
    const token = await readReplicaToken(values, io, 'serve-replica');

    const volume = await openOrCreate(dir, values, signal);
    let secondary: Secondary;
    try {
      secondary = await Secondary.open(volume, { label: dir });
    } catch (e) {
      await volume.close();
      throw e;
    }
    // `replication promote DIR` run meanwhile ends this server (the volume is then a primary)
    const promoted = new AbortController();
    const dispatch = replicaDispatcher(secondary, say);
    let server: ReplicaServer | undefined;
    let control: ControlServer | undefined;
    try {
      const listen = values.websocket === true ? listenReplicaWs : listenReplicaTcp;
      server = await listen({
        host,
        port,
        token,
        ...(tls ? { tls } : {}),
        // a primary, or a `stratadisk resync` client (told apart by its first message)
        onLink: (link, remote) => dispatch.onLink(link, remote),
        onRefused: (reason, remote) => say(`refused a connection from ${remote}: ${reason}`),
      });
      control = await serveControl(volume, dir, undefined, {
        replication: secondaryReplicationControl(secondary, server.url, { stopListening: async () => {
          await server!.close();
          // a resync client is cut off too, and what it was writing has landed
          await dispatch.idle();
        }, onPromoted: () => promoted.abort() }),
        onRefused: (reason) => say(reason),
      }).catch((e: Error) => {
        say(`no control socket (${e.message}); \`replication status\` and \`promote\` cannot reach this server.`);
        return undefined;
      });
      line(io.stdout, server.url);
      const r = secondary.status().role;
      say(`serving ${dir} (${volume.size} bytes, ${volume.blockSize}-byte blocks) as a secondary at ${server.url}; ${r.role === 'none' ? 'it never replicated: the first primary copies everything it holds' : `data generation ${r.gen.current}${r.consistent ? '' : ', inconsistent (a resync was interrupted: it resumes when the primary reconnects)'}`}.`);
      const term = new AbortController();
      const onTerm = () => term.abort();
      process.on('SIGTERM', onTerm);
      try {
        if (!signal.aborted && !term.signal.aborted && !promoted.signal.aborted) {
          await Promise.race([once(signal, 'abort'), once(term.signal, 'abort'), once(promoted.signal, 'abort')]);
        }
      } finally {
        process.off('SIGTERM', onTerm);
      }
    } finally {
      // in order: no new primary, end the session (applied writes flushed), then the volume
      await server?.close();
      await dispatch.idle();
      await secondary.close();
      await control?.close();
      await volume.close();
    }
    if (promoted.signal.aborted) say(`stopped: ${dir} was promoted to primary; serve it with \`stratadisk serve-nbd ${dir}\` or replicate it with \`stratadisk replicate ${dir} URL\`.`);
    else say('stopped; the applied writes were flushed and the volume closed.');
    return 0;
  },
};

async function openOrCreate(dir: string, values: Record<string, string | boolean | undefined>, signal: AbortSignal): Promise<Volume> {
  if (values.create === true) {
    const exists = await openVolume(dir, false).catch((e: unknown) => {
      if ((e as { code?: string }).code === 'not-found') return null;
      throw e;
    });
    if (exists) return exists;
    if (values.size === undefined) throw new UsageError('--create needs --size (the primary\'s size)', 'serve-replica');
    const size = parseSize(values.size as string, '--size');
    const blockSize = values['block-size'] === undefined ? DEFAULT_BLOCK_SIZE : parseSize(values['block-size'] as string, '--block-size');
    const target = await prepareVolumeDir(dir);
    try {
      return await Volume.create(new NodeDirNamespace(dir), { size, blockSize });
    } catch (e) {
      throw withKept(e, await target.undo(), signal);
    }
  }
  return openVolume(dir, false);
}
