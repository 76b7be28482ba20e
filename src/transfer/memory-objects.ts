import { StrataError } from '../errors.js';
import { OBJECT_KEY, type ObjectInfo, type ObjectRange, type ObjectStore } from './object-store.js';

export function checkObjectKey(key: string): string {
  if (key.length === 0 || key.length > 1024 || !OBJECT_KEY.test(key)) {
    throw new StrataError('invalid-argument', `object key ${JSON.stringify(key.slice(0, 80))} is not allowed: use letters, digits, '.', '_', '-', '@' in '/'-separated segments`);
  }
  return key;
}

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new StrataError('aborted', 'the object store operation was cancelled');
}

/** Objects in a Map: for tests and for staging in a browser tab. */
export class MemoryObjectStore implements ObjectStore {
  readonly description = 'memory';
  readonly objects = new Map<string, { data: Uint8Array; modified: number }>();

  async get(key: string, range?: ObjectRange, signal?: AbortSignal): Promise<Uint8Array | null> {
    aborted(signal);
    const o = this.objects.get(checkObjectKey(key));
    if (!o) return null;
    if (!range) return o.data.slice();
    const start = Math.min(range.offset, o.data.length);
    return o.data.slice(start, Math.min(o.data.length, start + range.length));
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    aborted(signal);
    const o = this.objects.get(checkObjectKey(key));
    return o ? { key, size: o.data.length, modified: o.modified } : null;
  }

  async put(key: string, data: Uint8Array, options?: { ifAbsent?: boolean; signal?: AbortSignal }): Promise<boolean> {
    aborted(options?.signal);
    checkObjectKey(key);
    if (options?.ifAbsent && this.objects.has(key)) return false;
    this.objects.set(key, { data: data.slice(), modified: Date.now() });
    return true;
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    aborted(signal);
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const key of keys) {
      const o = this.objects.get(key);
      if (o) yield { key, size: o.data.length, modified: o.modified };
    }
  }

  async delete(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    aborted(signal);
    for (const k of keys) this.objects.delete(checkObjectKey(k));
  }
}
