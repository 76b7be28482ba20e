/**
 * PLACEHOLDER on branch wt-objects: the real DirObjectStore (a local directory backend) is
 * written on another branch; take that file at merge. Only the signature is fixed here so
 * that open-objects.ts compiles.
 */
import { StrataError } from '../errors.js';
import type { ObjectInfo, ObjectRange, ObjectStore } from './object-store.js';

export class DirObjectStore implements ObjectStore {
  readonly description: string;

  private constructor(path: string) {
    this.description = path;
  }

  static async open(path: string, options?: { create?: boolean }): Promise<DirObjectStore> {
    void path;
    void options;
    throw new StrataError('unsupported', 'A local directory as an object store is not available in this build.');
  }

  async get(_key: string, _range?: ObjectRange, _signal?: AbortSignal): Promise<Uint8Array | null> {
    throw new StrataError('unsupported', 'unsupported');
  }

  async head(_key: string, _signal?: AbortSignal): Promise<ObjectInfo | null> {
    throw new StrataError('unsupported', 'unsupported');
  }

  async put(_key: string, _data: Uint8Array, _options?: { ifAbsent?: boolean; signal?: AbortSignal }): Promise<boolean> {
    throw new StrataError('unsupported', 'unsupported');
  }

  // eslint-disable-next-line require-yield
  async *list(_prefix: string, _signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    throw new StrataError('unsupported', 'unsupported');
  }

  async delete(_keys: readonly string[], _signal?: AbortSignal): Promise<void> {
    throw new StrataError('unsupported', 'unsupported');
  }
}
