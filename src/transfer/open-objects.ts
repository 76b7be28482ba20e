/**
 * An ObjectStore from a URL (Node: reads the environment and credentials files):
 * - `s3://bucket/prefix`: any S3-compatible endpoint (s3-objects.ts; configuration from the
 *   usual AWS variables, see s3-env.ts);
 * - `memory:` (a new empty store) or `memory:NAME` (one store per NAME in this process): tests;
 * - a local directory path or a `file:` URL: DirObjectStore (dir-objects.ts).
 * A store server (`http(s)://...` of `stratadisk serve-store`) is not an object store: its
 * protocol has no atomic or conditional whole-object write and names of at most 128 characters
 * without '/', so it is refused here with a hint.
 */
import { fileURLToPath } from 'node:url';
import { StrataError } from '../errors.js';
import { redactUrl } from '../util/redact.js';
import { DirObjectStore } from './dir-objects.js';
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
  if (/^https?:\/\//i.test(url)) {
    throw new StrataError('unsupported', `${redactUrl(url).slice(0, 200)} is an HTTP address; a store server (serve-store) cannot hold published images. Publish to s3://BUCKET/PREFIX or to a local directory, then serve it with \`stratadisk serve-edge\`.`);
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url)) {
    throw new StrataError('invalid-argument', `${redactUrl(url).slice(0, 200)}: unknown kind of object store; give s3://BUCKET/PREFIX, a local directory, or file:///path.`);
  }
  if (url === '') throw new StrataError('invalid-argument', 'No object store given; give s3://BUCKET/PREFIX or a local directory.');
  return DirObjectStore.open(url, { create: options.create ?? false });
}
