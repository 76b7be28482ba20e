/**
 * URL → ObjectStore for the CLI. This minimal version knows a local directory path (or
 * `file:` URL) and `memory:`; the full one (s3://, the store server) replaces it.
 */
import { fileURLToPath } from 'node:url';
import { StrataError } from '../errors.js';
import { DirObjectStore } from './dir-objects.js';
import { MemoryObjectStore } from './memory-objects.js';
import type { ObjectStore } from './object-store.js';

export async function openObjectStore(url: string, options: { create?: boolean } = {}): Promise<ObjectStore> {
  if (url === 'memory:') return new MemoryObjectStore();
  if (url.startsWith('file:')) return DirObjectStore.open(fileURLToPath(url), options);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new StrataError('unsupported', `${url.replace(/\/\/[^@/]*@/, '//…@')} is not a store this build can reach; give a local directory.`);
  return DirObjectStore.open(url, options);
}
