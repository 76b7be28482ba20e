import { readFileSync } from 'node:fs';
import { StrataError } from '../errors.js';
import { readSecret } from '../util/secret.js';
import { UsageError } from './io.js';

/** Options shared by the HTTP/NBD servers of the CLI (serve-store, serve-edge, serve-nbd). */

/** `--port`: 0-65535, default 0 (a free port). */
export function parsePort(value: unknown, command: string): number {
  if (typeof value !== 'string') return 0;
  const port = Number(value);
  if (!/^[0-9]+$/.test(value) || port > 65535) throw new UsageError(`--port: "${value}" is not a port number (0-65535)`, command);
  return port;
}

/** `--allow-origin` values: each a bare origin (scheme://host[:port]), or `*` where `anyOrigin`. */
export function parseOrigins(value: unknown, command: string, anyOrigin: boolean): string[] {
  const origins = (value as string[] | undefined) ?? [];
  for (const o of origins) {
    if (anyOrigin && o === '*') continue;
    let u: URL | undefined;
    try {
      u = new URL(o);
    } catch {
      u = undefined;
    }
    if (!u || u.origin !== o) throw new UsageError(`--allow-origin: "${o}" is not an origin (scheme://host[:port], no path), e.g. https://app.example${anyOrigin ? ', or *' : ''}`, command);
  }
  return origins;
}

/** `--cert FILE --key FILE` (HTTPS) or `--insecure`: checked together; the key is read as a secret (0600). */
export async function readTlsOptions(v: Record<string, unknown>, command: string): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  const certFile = typeof v.cert === 'string' ? v.cert : undefined;
  const keyFile = typeof v.key === 'string' ? v.key : undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--cert and --key go together', command);
  if (certFile !== undefined && v.insecure === true) throw new UsageError('--insecure means plain HTTP; it does not go with --cert/--key', command);
  if (certFile === undefined || keyFile === undefined) return undefined;
  const key = await readSecret({ what: 'the TLS private key', file: keyFile });
  return { cert: readPem(certFile), key: Buffer.from(key!) };
}

function readPem(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new StrataError('not-found', `Cannot read the certificate ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)}).`, { cause: e });
  }
}
