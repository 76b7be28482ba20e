import { once } from 'node:events';
import { serveNbd } from '../../interop/nbd/index.js';
import { serveNbdControl, type NbdControl } from '../../interop/nbd/control.js';
import type { Command } from '../command.js';
import { line, UsageError } from '../io.js';
import { parseTarget } from '../target.js';

export const serveNbdCommand: Command = {
  name: 'serve-nbd',
  summary: 'serve the volume (or a snapshot) over NBD to QEMU, nbdcopy, nbdinfo',
  usage: 'serve-nbd DIR[@NAME] [--port P | --socket PATH] [--host ADDR] [--read-only] [--processes N]',
  details: [
    'Prints the URI to connect to, then serves until Ctrl-C or SIGTERM, and then flushes and',
    'closes the volume. Exports: "" (the default) and the directory\'s name are the live volume;',
    'each snapshot is an export of its own name, read-only. DIR@NAME serves that snapshot as the',
    'default export (read-only). `stratadisk mirror DIR DST` run meanwhile moves the volume: at the',
    'end of the job this server serves DST instead, without dropping its clients.',
    '  --port P        TCP port (default: a free one), on 127.0.0.1 unless --host says otherwise',
    '  --host ADDR     address to listen on (default 127.0.0.1; there is no TLS and no authentication)',
    '  --socket PATH   a Unix socket instead of TCP (a stale one, left by a server that died, is',
    '                  replaced; one a process listens on, or a path that is not a socket, is refused)',
    '  --read-only     refuse every write',
    '  --processes N   read-only only: serve connections from N child processes (several cores for',
    '                  clients with several connections, such as nbdcopy); default 0',
    'Example: stratadisk serve-nbd vol --port 10809 & qemu-img convert -f raw nbd://127.0.0.1:10809/ -O qcow2 out.qcow2',
  ].join('\n'),
  options: { port: { type: 'string' }, host: { type: 'string' }, socket: { type: 'string' }, 'read-only': { type: 'boolean' }, processes: { type: 'string' } },
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
    const server = await serveNbd(target, {
      ...(processes !== undefined ? { processes } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(typeof values.host === 'string' ? { host: values.host } : {}),
      ...(typeof values.socket === 'string' ? { socket: values.socket } : {}),
      readOnly: values['read-only'] === true,
      onConnectionError: (e) => line(io.stderr, `stratadisk: serve-nbd: a connection was closed: ${e.message}`),
      onDamage: (e) => line(io.stderr, `stratadisk: serve-nbd: ${e.message} (the client got EIO)`),
    });
    line(io.stdout, server.uri);
    // A writable server also takes job requests (delete-snapshot, commit, mirror, jobs) from
    // other `stratadisk` processes, through a control socket in the volume directory; after a
    // mirror it serves the copy (and the socket moves to the copy's directory).
    let control: NbdControl | undefined;
    if (!server.volume.readOnly && target.snapshot === undefined) {
      try {
        control = await serveNbdControl(server, target.dir, (e) => line(io.stderr, `stratadisk: serve-nbd: ${e.message}`));
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
      await server.close();
    }
    line(io.stderr, 'stratadisk: serve-nbd: stopped; the volume was flushed and closed.');
    return 0;
  },
};
