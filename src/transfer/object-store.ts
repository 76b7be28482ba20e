/**
 * An object store: named, immutable-by-convention blobs under one prefix (an S3 bucket prefix,
 * an R2 bucket, a local directory, memory). Publishing, versions, gc and the edge worker speak
 * only this interface; each backend is one file implementing it (see README.md in this folder).
 *
 * Keys are relative to the store's prefix, use `/` as separator, and match OBJECT_KEY (no `..`,
 * no leading `/`, no empty segment): a backend refuses any other key with 'invalid-argument'
 * before it touches the network or the disk.
 */
export interface ObjectInfo {
  key: string;
  size: number;
  /** last modification, ms since the epoch, when the backend knows it */
  modified?: number;
}

export interface ObjectRange {
  offset: number;
  length: number;
}

export interface ObjectStore {
  /** a short description for messages (never carries a secret) */
  readonly description: string;
  /**
   * The whole object, or `length` bytes at `offset` (fewer only at its end), in a new array the
   * caller owns. `null` when the object does not exist. A range past the end gives an empty array.
   */
  get(key: string, range?: ObjectRange, signal?: AbortSignal): Promise<Uint8Array | null>;
  /** size (and time) of an object, `null` when it does not exist */
  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null>;
  /**
   * Store `data` under `key`, atomically: a reader sees the old object, no object, or all of
   * `data`, never part of it. With `ifAbsent`, an existing object is left alone and the call
   * returns false (true when it wrote).
   */
  put(key: string, data: Uint8Array, options?: { ifAbsent?: boolean; signal?: AbortSignal }): Promise<boolean>;
  /** every object whose key starts with `prefix`, in key order */
  list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo>;
  /** delete objects; a missing one is not an error */
  delete(keys: readonly string[], signal?: AbortSignal): Promise<void>;
  close?(): Promise<void>;
}

/** Keys: 1–1024 characters of [A-Za-z0-9._@-] in segments separated by single '/'. */
export const OBJECT_KEY = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._@-]+(?:\/[A-Za-z0-9._@-]+)*$/;
