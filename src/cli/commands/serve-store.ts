import { once } from 'node:events';
import { lstatSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { serveStore } from '../../store/store-server.js';
import { isLoopback } from '../../util/loopback.js';
import { storeObjectArea } from '../../transfer/store-server-objects.js';
import { checkToken, generateToken, readSecret, writeSecretFile } from '../../util/secret.js';
import type { Command } from '../command.js';
import { parseOrigins, parsePort, readTlsOptions } from '../server-options.js';
import { line, UsageError } from '../io.js';

export const serveStoreCommand: Command = {
  name: 'serve-store',
  summary: 'serve a directory as a store namespace over HTTP(S) (a mirror target for browsers and other hosts)',
  usage: 'serve-store DIR [--port P] [--host ADDR] [--cert FILE --key FILE | --insecure] [--token-file FILE] [--allow-origin ORIGIN]... [--allow-host NAME]... [--max-request SIZE] [--max-connections N]',
  details: [
    'Serves DIR, and each of its direct subdirectories as a namespace of its own, to stratadisk',
    'clients (RemoteNamespace, the worker backend "remote", `stratadisk mirror SRC URL`). Prints the',
    'URL (a volume goes to URL/NAME, subdirectory NAME) and the file holding the token clients must',
    'send. flush on a client means fsync on the server. Until stopped (Ctrl-C or SIGTERM).',
    'It also holds published images: `stratadisk publish vol --to URL` (and versions, gc, serve-edge of',
    'URL) keep them in DIR/.objects (files 0600, directories 0700), a name no namespace can have.',
    'The token: read from --token-file FILE (mode 0600, yours) or $STRATADISK_TOKEN; with',
    '--token-file FILE naming no file yet, a new token is written there (0600); with neither, a new',
    'token is written to a private temporary file, removed when the server stops. A token has at',
    'least 128 bits (e.g. `openssl rand -base64 32`). Clients take it the same ways (never argv).',
    'Only loopback is served in plain HTTP: another address needs --cert/--key (HTTPS), or',
    '--insecure (anyone on the network path reads the data and the token). Web pages may call the',
    'server only from the origins given with --allow-origin (none by default).',
    '  --port P              TCP port (default: a free one)',
    '  --host ADDR           listen address (default 127.0.0.1: loopback only)',
    '  --cert FILE           TLS certificate chain (PEM): serve HTTPS',
    '  --key FILE            its private key (PEM, mode 0600)',
    '  --insecure            allow plain HTTP on a non-loopback address (NOT recommended)',
    '  --token-file FILE     the token file (read, or created 0600); - reads the token from standard input',
    '  --token T             DEPRECATED: the token on the command line, visible in `ps` (warns)',
    '  --allow-origin O      let web pages of origin O (e.g. https://app.example) call the server; repeatable',
    '  --allow-host NAME     a host name clients use besides IP addresses, localhost and the certificate\'s names; repeatable',
    '  --max-request N       largest request body and read answer in bytes (default 64 MiB)',
    '  --max-connections N   simultaneous connections (default 128)',
    'Example: stratadisk serve-store /srv/disks --port 7000 --token-file ~/.stratadisk-token &',
    '         stratadisk mirror vol http://127.0.0.1:7000/vol --token-file ~/.stratadisk-token',
  ].join('\n'),
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    insecure: { type: 'boolean' },
    'allow-origin': { type: 'string', multiple: true },
    'allow-host': { type: 'string', multiple: true },
    'max-request': { type: 'string' },
    'max-connections': { type: 'string' },
  },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal }) {
    const v = values as Record<string, string | boolean | string[] | undefined>;
    const port = parsePort(v.port, 'serve-store');
    let maxBodyBytes: number | undefined;
    if (typeof v['max-request'] === 'string') {
      maxBodyBytes = Number(v['max-request']);
      if (!/^[0-9]+$/.test(v['max-request']) || maxBodyBytes < 65536 || maxBodyBytes > 1 << 30) throw new UsageError('--max-request: give a byte count from 65536 to 1073741824', 'serve-store');
    }
    let maxConnections: number | undefined;
    if (typeof v['max-connections'] === 'string') {
      maxConnections = Number(v['max-connections']);
      if (!/^[0-9]+$/.test(v['max-connections']) || maxConnections < 1 || maxConnections > 65536) throw new UsageError('--max-connections: give a number from 1 to 65536', 'serve-store');
    }
    const host = typeof v.host === 'string' ? v.host : '127.0.0.1';
    const tls = await readTlsOptions(v, 'serve-store');
    const origins = parseOrigins(v['allow-origin'], 'serve-store', false);
    const warn = (m: string) => line(io.stderr, `stratadisk: serve-store: ${m}`);

    // The token: a file (read, or created), standard input, the deprecated argument, the environment, or a new one.
    const tokenFile = typeof v['token-file'] === 'string' ? v['token-file'] : undefined;
    let token: string | undefined;
    let storedAt: string | undefined;
    let tempDir: string | undefined;
    const fileExists = tokenFile !== undefined && tokenFile !== '-' && existsNoFollow(tokenFile);
    if (tokenFile !== undefined && tokenFile !== '-' && !fileExists) {
      if (typeof v.token === 'string') throw new UsageError('give the token once: --token or --token-file', 'serve-store');
      token = generateToken();
      await writeSecretFile(resolve(tokenFile), token);
      storedAt = resolve(tokenFile);
    } else {
      token = await readSecret({
        what: 'the store server\'s token',
        ...(tokenFile !== undefined ? { file: tokenFile } : {}),
        ...(typeof v.token === 'string' ? { argument: v.token, argumentName: '--token' } : {}),
        env: 'STRATADISK_TOKEN',
        ...(io.stdin ? { stdin: io.stdin as AsyncIterable<Uint8Array> } : {}),
        warn,
      });
      if (token !== undefined) checkToken(token, tokenFile !== undefined ? `The token in ${tokenFile === '-' ? 'standard input' : tokenFile}` : typeof v.token === 'string' ? 'The --token value' : 'The token in $STRATADISK_TOKEN');
      if (tokenFile !== undefined && tokenFile !== '-') storedAt = resolve(tokenFile);
    }
    if (token === undefined) {
      token = generateToken();
      tempDir = await mkdtemp(join(process.env.XDG_RUNTIME_DIR || tmpdir(), 'stratadisk-serve-store-')); // mode 0700
      storedAt = join(tempDir, 'token');
      await writeSecretFile(storedAt, token);
    }

    if (!isLoopback(host) && !tls && v.insecure !== true) {
      throw new UsageError(`serving ${host} in plain HTTP would send the data and the token over the network in clear: give --cert FILE --key FILE, or --insecure on a network you trust`, 'serve-store');
    }
    let server;
    try {
      server = await serveStore(resolve(args[0]!), {
        port,
        host,
        token,
        allowOrigins: origins,
        ...(tls ? { tls } : {}),
        ...(v.insecure === true ? { insecure: true } : {}),
        ...(Array.isArray(v['allow-host']) ? { allowHosts: v['allow-host'] } : {}),
        ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
        ...(maxConnections !== undefined ? { maxConnections } : {}),
        onError: (e) => warn(`error: ${e instanceof Error ? e.message : String(e)}`),
        routes: [storeObjectArea()],
      });
    } catch (e) {
      if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true });
      throw e;
    }
    line(io.stdout, server.url);
    line(io.stdout, storedAt !== undefined ? `token file: ${storedAt}` : 'token: from $STRATADISK_TOKEN or standard input');
    if (!tls && !isLoopback(host)) warn(`WARNING: plain HTTP on ${host} (--insecure): anyone on the network path can read the data and the token, and change what is written.`);
    if (storedAt !== undefined) warn(`clients send the token in ${storedAt}: --token-file ${storedAt}, or STRATADISK_TOKEN=$(cat ${storedAt}); in a browser, URL#token=...${tempDir !== undefined ? ' (the file is removed when the server stops)' : ''}`);
    const term = new AbortController();
    const onTerm = () => term.abort();
    process.on('SIGTERM', onTerm);
    try {
      if (!signal.aborted && !term.signal.aborted) await Promise.race([once(signal, 'abort'), once(term.signal, 'abort')]);
    } finally {
      process.off('SIGTERM', onTerm);
      await server.close();
      if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true });
    }
    line(io.stderr, 'stratadisk: serve-store: stopped.');
    return 0;
  },
};


function existsNoFollow(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
