import { openObjectStore, type OpenObjectStoreOptions } from '../transfer/open-objects.js';
import type { ObjectStore } from '../transfer/object-store.js';
import { readSecret } from '../util/secret.js';
import type { Context } from './command.js';
import { line } from './io.js';

/**
 * The object store a command names (publish, versions, gc, serve-edge): for a store server's
 * URL, http(s)://HOST:PORT/, its token comes from `--token-file FILE` (mode 0600; `-` reads
 * standard input) or $STRATADISK_TOKEN, as for `copy` and `mirror`; never from argv.
 */
export const OBJECT_STORE_OPTIONS = {
  'token-file': { type: 'string' },
  insecure: { type: 'boolean' },
} as const;

export const OBJECT_STORE_HELP = [
  '  --token-file FILE  for a store server (http(s)://HOST:PORT/ of serve-store): its token, a file of',
  '                     mode 0600 (- reads standard input); else $STRATADISK_TOKEN',
  '  --insecure         allow plain http:// to a store server that is not on loopback',
];

export async function openObjectStoreArg(url: string, ctx: Pick<Context, 'io' | 'values'>, command: string, options: OpenObjectStoreOptions = {}): Promise<ObjectStore> {
  const v = ctx.values as Record<string, unknown>;
  let token: string | undefined;
  if (/^https?:\/\//i.test(url)) {
    token = await readSecret({
      what: "the store server's token",
      ...(typeof v['token-file'] === 'string' ? { file: v['token-file'] } : {}),
      env: 'STRATADISK_TOKEN',
      ...(ctx.io.stdin ? { stdin: ctx.io.stdin as AsyncIterable<Uint8Array> } : {}),
      warn: (m) => line(ctx.io.stderr, `stratadisk: ${command}: ${m}`),
    });
  } else if (typeof v['token-file'] === 'string') {
    line(ctx.io.stderr, `stratadisk: ${command}: --token-file is for a store server (http(s)://HOST:PORT/); ignored for ${url.startsWith('s3://') ? 's3:// (the AWS variables hold its credentials)' : 'a local directory'}.`);
  }
  return openObjectStore(url, { ...options, ...(token !== undefined ? { token } : {}), ...(v.insecure === true ? { insecure: true } : {}) });
}
