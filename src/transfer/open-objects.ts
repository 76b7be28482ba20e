/**
 * An ObjectStore from a URL (Node: reads the environment and credentials files):
 * - `s3://bucket/prefix`: any S3-compatible endpoint (s3-objects.ts; configuration from the
 *   usual AWS variables, see s3-env.ts);
 * - `memory:` (a new empty store) or `memory:NAME` (one store per NAME in this process): tests;
 * - a local directory path or a `file:` URL: DirObjectStore (dir-objects.ts);
 * - `http(s)://HOST:PORT/` of `stratadisk serve-store`: its object area (http-objects.ts), with
 *   `token` (else $STRATADISK_TOKEN of `env`). Plain http only to a loopback address unless
 *   `insecure` (the token and the images would cross the network in clear).
 */
import { fileURLToPath } from 'node:url';
import { StrataError } from '../errors.js';
import { redactUrl } from '../util/redact.js';
import { isLoopback } from '../util/loopback.js';
import { DirObjectStore } from './dir-objects.js';
import { HttpObjectStore } from './http-objects.js';
import { MemoryObjectStore } from './memory-objects.js';
import type { ObjectStore } from './object-store.js';
import { s3OptionsFromEnv } from './s3-env.js';
import { S3ObjectStore } from './s3-objects.js';

export interface OpenObjectStoreOptions {
  /** create a local directory store when it does not exist */
  create?: boolean;
  /** the environment to read S3 configuration from (default process.env) */
  env?: Record<string, string | undefined>;
  /** told once when the S3 server does not support conditional PUT */
  onWarning?: (message: string) => void;
  /** the store server's token (http(s) URLs); default $STRATADISK_TOKEN of `env` */
  token?: string;
  /** allow plain http to an address other than loopback */
  insecure?: boolean;
}

const memoryStores = new Map<string, MemoryObjectStore>();

export async function openObjectStore(url: string, options: OpenObjectStoreOptions = {}): Promise<ObjectStore> {
  if (url.startsWith('s3://')) {
    const o = await s3OptionsFromEnv(url, options.env ?? process.env);
    return new S3ObjectStore({ ...o, ...(options.onWarning ? { onWarning: options.onWarning } : {}) });
  }
  if (url === 'memory:') return new MemoryObjectStore();
  if (url.startsWith('memory:')) {
    const name = url.slice('memory:'.length);
    let s = memoryStores.get(name);
    if (!s) {
      s = new MemoryObjectStore();
      memoryStores.set(name, s);
    }
    return s;
  }
  if (url.startsWith('file:')) {
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (e) {
      throw new StrataError('invalid-argument', `"${redactUrl(url).slice(0, 200)}" is not a file: URL of a local path.`, { cause: e });
    }
    return DirObjectStore.open(path, { create: options.create ?? false });
  }
  if (/^https?:\/\//i.test(url)) return openStoreServerObjects(url, options);
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url)) {
    throw new StrataError('invalid-argument', `${redactUrl(url).slice(0, 200)}: unknown kind of object store; give s3://BUCKET/PREFIX, a local directory, file:///path, or http(s)://HOST:PORT/ of a store server.`);
  }
  if (url === '') throw new StrataError('invalid-argument', 'No object store given; give s3://BUCKET/PREFIX or a local directory.');
  return DirObjectStore.open(url, { create: options.create ?? false });
}

/** The object area of a store server (`stratadisk serve-store`). */
function openStoreServerObjects(url: string, options: OpenObjectStoreOptions): ObjectStore {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new StrataError('invalid-argument', `"${redactUrl(url).slice(0, 200)}" is not a URL; give the store server's address, e.g. http://127.0.0.1:7000/.`, { cause: e });
  }
  if (u.protocol === 'http:' && !isLoopback(u.hostname) && !options.insecure) {
    throw new StrataError(
      'invalid-argument',
      `${u.origin}/ is plain HTTP to another host: the token and the images would cross the network in clear, and anyone on the path could change them. Use https:// (serve-store --cert/--key), or allow plain HTTP explicitly with --insecure on a network you trust.`,
    );
  }
  new HttpObjectStore(url); // the URL's own checks first (no credentials, path or fragment in it)
  const env = options.env ?? process.env;
  const token = options.token ?? (env.STRATADISK_TOKEN || undefined);
  if (token === undefined) {
    throw new StrataError('invalid-argument', `${u.origin}/ is a store server; it needs its token: --token-file FILE (mode 0600, e.g. the file serve-store printed) or $STRATADISK_TOKEN.`);
  }
  return new HttpObjectStore(url, { token });
}
