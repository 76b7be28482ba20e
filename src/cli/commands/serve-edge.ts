import { once } from 'node:events';
import { createEdgeHandler } from '../../edge/handler.js';
import { serveEdge } from '../../edge/node-server.js';
import { createVersionCache } from '../../edge/version-cache.js';
import { isLoopback } from '../../util/loopback.js';
import { openPublishedVersion } from '../../transfer/published-version.js';
import { loadKernels } from '../../wasm/index.js';
import type { Command } from '../command.js';
import { openObjectStoreArg } from '../object-store-arg.js';
import { parseOrigins, parsePort, readTlsOptions } from '../server-options.js';
import { line, UsageError } from '../io.js';

export const serveEdgeCommand: Command = {
  name: 'serve-edge',
  summary: 'serve the published images of a directory or object store over HTTP(S), as the edge worker does',
  usage: 'serve-edge DIR|URL [--port P] [--host ADDR] [--cert FILE --key FILE | --insecure] [--allow-origin ORIGIN|*]... [--allow-host NAME]... [--tag-max-age SECONDS] [--token-file FILE]',
  details: [
    'Serves GET and HEAD of /IMAGE/TAG and /IMAGE/@VERSION for the images published to DIR (a local',
    'directory, file:///path) or URL (s3://BUCKET/PREFIX, credentials from the usual AWS variables;',
    'or http(s)://HOST:PORT/ of `serve-store`, its token from --token-file or $STRATADISK_TOKEN),',
    'with single byte ranges, ETag = the version content ID, If-None-Match/If-Range, and',
    'Cache-Control immutable on version URLs (TAG URLs: --tag-max-age). Every chunk is checked',
    'against its BLAKE3 name; damaged data is an error status or a cut body, never wrong bytes.',
    'Nothing else of the store is served (no listing). Until stopped (Ctrl-C or SIGTERM).',
    'Only loopback is served in plain HTTP: another address needs --cert/--key (HTTPS), or',
    '--insecure. Web pages may read the images only from the origins given with --allow-origin',
    '(none by default; * for any page, as the Cloudflare worker does for public images).',
    '  --port P              TCP port (default: a free one)',
    '  --host ADDR           listen address (default 127.0.0.1: loopback only)',
    '  --cert FILE           TLS certificate chain (PEM): serve HTTPS',
    '  --key FILE            its private key (PEM, mode 0600)',
    '  --insecure            allow plain HTTP on a non-loopback address, and plain http:// to a store server off loopback (NOT recommended)',
    '  --allow-origin O      let web pages of origin O (e.g. https://app.example), or * for any, read the images; repeatable',
    '  --allow-host NAME     a host name clients use besides IP addresses, localhost and the certificate\'s names; repeatable',
    '  --tag-max-age S       seconds a TAG URL may be cached, and a tag lookup trusted (default 60)',
    '  --token-file FILE     the token of the store server URL (mode 0600; - reads standard input); else $STRATADISK_TOKEN',
    'Example: stratadisk publish vm --to /srv/published && stratadisk serve-edge /srv/published --port 8788 &',
    '         curl -r 0-511 http://127.0.0.1:8788/vm/latest | xxd | head',
  ].join('\n'),
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    insecure: { type: 'boolean' },
    'allow-origin': { type: 'string', multiple: true },
    'allow-host': { type: 'string', multiple: true },
    'tag-max-age': { type: 'string' },
    'token-file': { type: 'string' },
  },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal }) {
    const v = values as Record<string, string | boolean | string[] | undefined>;
    const port = parsePort(v.port, 'serve-edge');
    let tagMaxAge = 60;
    if (typeof v['tag-max-age'] === 'string') {
      tagMaxAge = Number(v['tag-max-age']);
      if (!/^[0-9]{1,7}$/.test(v['tag-max-age'])) throw new UsageError('--tag-max-age: give a number of seconds (0-9999999)', 'serve-edge');
    }
    const host = typeof v.host === 'string' ? v.host : '127.0.0.1';
    const tls = await readTlsOptions(v, 'serve-edge');
    if (!isLoopback(host) && tls === undefined && v.insecure !== true) {
      throw new UsageError(`serving ${host} in plain HTTP lets anyone on the network path change the bytes clients boot: give --cert FILE --key FILE, or --insecure on a network you trust`, 'serve-edge');
    }
    const origins = parseOrigins(v['allow-origin'], 'serve-edge', true);
    const warn = (m: string) => line(io.stderr, `stratadisk: serve-edge: ${m}`);

    await loadKernels();
    const objects = await openObjectStoreArg(args[0]!, { io, values }, 'serve-edge', { onWarning: warn });
    if (!args[0]!.startsWith('s3://')) {
      // A local store this user cannot read would answer every request with 502: say so now.
      // (Not for S3: a key allowed only s3:GetObject answers a missing key with 403.)
      try {
        await objects.head(`versions/${'0'.repeat(64)}`);
      } catch (e) {
        await objects.close?.();
        throw e;
      }
    }
    const handler = createEdgeHandler({
      open: createVersionCache({
        open: (ref, s) => openPublishedVersion(objects, 'contentId' in ref ? { contentId: ref.contentId } : ref, s ? { signal: s } : {}),
        tagMaxAgeMs: tagMaxAge * 1000,
      }),
      tagMaxAge,
      allowOrigin: origins.includes('*') ? '*' : origins,
      onError: (e) => warn(`error: ${e instanceof Error ? e.message : String(e)}`),
    });
    let server;
    try {
      server = await serveEdge(handler, {
        port,
        host,
        ...(tls ? { tls } : {}),
        ...(v.insecure === true ? { insecure: true } : {}),
        ...(Array.isArray(v['allow-host']) ? { allowHosts: v['allow-host'] } : {}),
        onError: (e) => warn(`error: ${e instanceof Error ? e.message : String(e)}`),
      });
    } catch (e) {
      await objects.close?.();
      throw e;
    }
    line(io.stdout, server.url);
    if (!tls && !isLoopback(host)) warn(`WARNING: plain HTTP on ${host} (--insecure): anyone on the network path can change the bytes clients read.`);
    const term = new AbortController();
    const onTerm = () => term.abort();
    process.on('SIGTERM', onTerm);
    try {
      if (!signal.aborted && !term.signal.aborted) await Promise.race([once(signal, 'abort'), once(term.signal, 'abort')]);
    } finally {
      process.off('SIGTERM', onTerm);
      await server.close();
      await objects.close?.();
    }
    line(io.stderr, 'stratadisk: serve-edge: stopped.');
    return 0;
  },
};

