import { once } from 'node:events';
import { resolve } from 'node:path';
import { serveStore } from '../../store/store-server.js';
import type { Command } from '../command.js';
import { line, UsageError } from '../io.js';

export const serveStoreCommand: Command = {
  name: 'serve-store',
  summary: 'serve a directory as a store namespace over HTTP (a mirror target for browsers and other hosts)',
  usage: 'serve-store DIR [--port P] [--host ADDR] [--token T] [--max-request SIZE]',
  details: [
    'Serves DIR, and each of its direct subdirectories as a namespace of its own, to stratadisk',
    'clients (RemoteNamespace, the worker backend "remote", `stratadisk mirror SRC URL`). Prints the',
    'URL with its token (http://127.0.0.1:P/#token=T); a volume goes to URL/NAME (subdirectory NAME).',
    'flush on a client means fsync on the server. Until stopped (Ctrl-C or SIGTERM).',
    '  --port P          TCP port (default: a free one)',
    '  --host ADDR       listen address (default 127.0.0.1: loopback only)',
    '  --token T         the bearer token clients must send (default: a random one, printed)',
    '  --max-request N   largest request body and read answer in bytes (default 64 MiB)',
    'Example: stratadisk serve-store /srv/disks --port 7000 & stratadisk mirror vol "http://127.0.0.1:7000/vol#token=..."',
  ].join('\n'),
  options: { port: { type: 'string' }, host: { type: 'string' }, token: { type: 'string' }, 'max-request': { type: 'string' } },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal }) {
    let port = 0;
    if (typeof values.port === 'string') {
      port = Number(values.port);
      if (!/^[0-9]+$/.test(values.port) || port > 65535) throw new UsageError(`--port: "${values.port}" is not a port number (0-65535)`, 'serve-store');
    }
    let maxBodyBytes: number | undefined;
    if (typeof values['max-request'] === 'string') {
      maxBodyBytes = Number(values['max-request']);
      if (!/^[0-9]+$/.test(values['max-request']) || maxBodyBytes < 65536 || maxBodyBytes > 1 << 30) throw new UsageError('--max-request: give a byte count from 65536 to 1073741824', 'serve-store');
    }
    const server = await serveStore(resolve(args[0]!), {
      port,
      ...(typeof values.host === 'string' ? { host: values.host } : {}),
      ...(typeof values.token === 'string' ? { token: values.token } : {}),
      ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
    });
    line(io.stdout, `${server.url}#token=${server.token}`);
    const term = new AbortController();
    const onTerm = () => term.abort();
    process.on('SIGTERM', onTerm);
    try {
      if (!signal.aborted && !term.signal.aborted) await Promise.race([once(signal, 'abort'), once(term.signal, 'abort')]);
    } finally {
      process.off('SIGTERM', onTerm);
      await server.close();
    }
    line(io.stderr, 'stratadisk: serve-store: stopped.');
    return 0;
  },
};
