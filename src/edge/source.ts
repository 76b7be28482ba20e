/**
 * What the edge handler serves: one published version, opened by tag or by content ID.
 * `PublishedVersion` (src/transfer/published-version.ts) satisfies VersionSource; the tests and
 * the benchmark's raw peer use others.
 */
export interface VersionSource {
  /** the version content ID (64 lower-case hex digits): the ETag */
  readonly contentId: string;
  /** the image the version was published as; a URL of another image does not serve it */
  readonly image: string;
  /** bytes */
  readonly size: number;
  /**
   * Exactly `length` bytes at `offset` (the caller keeps offset + length ≤ size), every byte
   * verified; throws (never returns other bytes) when the store's data does not match its name.
   */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/** Which version a URL names: `/IMAGE/TAG` or `/IMAGE/@CONTENTID`. */
export type VersionRef = { image: string; tag: string } | { image: string; contentId: string };

/** Opens a version; throws StrataError 'not-found' when there is none. */
export type OpenVersion = (ref: VersionRef, signal?: AbortSignal) => Promise<VersionSource>;

/** The part of the Workers Cache API (`caches.default`) the handler uses. */
export interface CacheLike {
  match(request: Request): Promise<Response | undefined>;
  put(request: Request, response: Response): Promise<void>;
}

/** The part of a Workers ExecutionContext the handler uses. */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}
