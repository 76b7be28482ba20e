/**
 * The one error class of stratadisk. `code` is stable (safe to switch on, survives JSON and
 * worker boundaries); `message` tells a person what happened and what to do about it.
 */
export type ErrorCode =
  | 'out-of-range'
  | 'invalid-argument'
  | 'corrupt'
  | 'checksum-mismatch'
  | 'quota'
  | 'locked'
  | 'read-only'
  | 'frozen'
  | 'timeout'
  | 'unsupported'
  | 'aborted'
  | 'not-found'
  | 'exists'
  | 'closed'
  | 'io'
  /** the peer is not allowed here: another user on a private socket, a target someone else owns */
  | 'permission-denied'
  /** a remote image (HTTP base of a volume) is no longer the version the volume was pinned to */
  | 'image-changed'
  /** an HTTP peer is not trusted: a redirect to another origin or from https to http, a TLS certificate no trusted CA signed */
  | 'untrusted'
  /** a path that would leave its directory: a symbolic link (or a non-regular file) where a store or a namespace must be */
  | 'unsafe-path'
  /** both sides of a replication pair were written apart: neither holds what the other wrote (never merged silently) */
  | 'split-brain';

export class StrataError extends Error {
  override name = 'StrataError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  toJSON(): { name: string; code: ErrorCode; message: string } {
    return { name: this.name, code: this.code, message: this.message };
  }

  static fromJSON(json: { code: ErrorCode; message: string }): StrataError {
    return new StrataError(json.code, json.message);
  }
}

/** True when `e` is a StrataError, optionally with the given code. */
export function isStrataError(e: unknown, code?: ErrorCode): e is StrataError {
  return e instanceof StrataError && (code === undefined || e.code === code);
}
