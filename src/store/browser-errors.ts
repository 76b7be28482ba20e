import { StrataError, type ErrorCode } from '../errors.js';

/**
 * Turns what the browser's storage APIs throw (DOMExceptions from OPFS, IndexedDB and Web Locks)
 * into a StrataError with a stable code and a message a person can act on. The original error
 * is kept as `cause`. A StrataError passes through unchanged.
 *
 * @param e what was thrown (or an IDBRequest/IDBTransaction `error`)
 * @param action what we were doing, as a verb phrase: "write 65536 bytes to volumes/vm1/layer-1"
 */
export function browserError(e: unknown, action: string): StrataError {
  if (e instanceof StrataError) return e;
  const name = errorName(e);
  const detail = e instanceof Error && e.message ? ` (${name}: ${e.message})` : name ? ` (${name})` : '';
  const code = browserErrorCode(e);
  return new StrataError(code, `Could not ${action}${detail}. ${ADVICE[code] ?? ''}`.trim(), { cause: e });
}

/** The StrataError code for a browser error, by its DOMException name (see {@link browserError}). */
export function browserErrorCode(e: unknown): ErrorCode {
  switch (errorName(e)) {
    case 'QuotaExceededError':
      return 'quota';
    case 'AbortError':
      // Chromium aborts an IndexedDB transaction that ran out of space with an AbortError whose
      // message names the quota (and the request error is the QuotaExceededError); an abort for
      // any other reason is not a quota problem.
      return /quota|disk.?full|space/i.test(messageOf(e)) ? 'quota' : 'aborted';
    case 'NotFoundError':
    case 'NotFoundErr':
      return 'not-found';
    case 'NoModificationAllowedError':
      // OPFS: the file has an open sync access handle (in this or another worker or tab) whose
      // mode excludes ours, or a directory entry cannot be removed while a handle is open.
      return 'locked';
    case 'InvalidStateError':
      // OPFS: a handle that was closed, or a file that is locked by a writable stream;
      // IndexedDB: a connection that was closed (for example by a deletion from another tab).
      return /clos/i.test(messageOf(e)) ? 'closed' : 'locked';
    case 'TypeMismatchError':
    case 'TypeError':
    case 'SyntaxError':
      return 'invalid-argument';
    case 'SecurityError':
    case 'NotAllowedError':
      return 'unsupported';
    case 'VersionError':
    case 'DataError':
    case 'DataCloneError':
      return 'corrupt';
    default:
      return 'io';
  }
}

/** True when `e` (or its cause) is the browser saying the origin is out of storage. */
export function isQuotaError(e: unknown): boolean {
  if (e instanceof StrataError) return e.code === 'quota';
  return browserErrorCode(e) === 'quota';
}

const ADVICE: Partial<Record<ErrorCode, string>> = {
  quota:
    'The browser storage for this site is full: free space (delete snapshots or volumes you no longer need, or other site data), ask for persistent storage (requestPersistence()), and check usage with storageEstimate(). Nothing of this write was applied.',
  'not-found': 'It does not exist (any more); create it first, or check the name.',
  locked:
    'Another tab or worker has this file or volume open for writing; close the volume there (or close other tabs of this site), or open it read-only.',
  closed: 'The connection was closed (the database may have been deleted or upgraded from another tab); open it again.',
  unsupported: 'This browser context does not allow it (private browsing, a sandboxed frame or a missing feature); try a normal window or another store.',
  corrupt: 'The stored data is not what stratadisk wrote; the database may belong to another application.',
  aborted: 'The operation was aborted before it finished; nothing of it was applied. Try again.',
  io: 'The browser reported a storage failure; try again, and if it persists, check the browser\'s storage for this site.',
};

function errorName(e: unknown): string {
  if (e && typeof e === 'object' && 'name' in e && typeof (e as { name: unknown }).name === 'string') return (e as { name: string }).name;
  return '';
}

function messageOf(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return `${e.message} ${cause instanceof Error ? cause.message : ''}`;
  }
  return String(e);
}
