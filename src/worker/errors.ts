/**
 * Errors across the worker boundary. Comlink's default `throw` handler sends only `name`,
 * `message` and `stack`, so `err.code` is lost (comlink issue #594). This replacement keeps the
 * code and rebuilds a StrataError on the other side. Register it on BOTH sides.
 */
import { transferHandlers, type TransferHandler } from 'comlink';
import { StrataError, type ErrorCode } from '../errors.js';
import type { SerializedError, ThrownValue } from './protocol.js';

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'out-of-range', 'invalid-argument', 'corrupt', 'checksum-mismatch', 'quota', 'locked', 'read-only',
  'frozen', 'timeout', 'unsupported', 'aborted', 'not-found', 'exists', 'closed', 'io', 'image-changed', 'untrusted', 'unsafe-path', 'permission-denied', 'split-brain',
]);

let registered = false;

/** Replace comlink's `throw` transfer handler (idempotent). Call it in the worker and on the page. */
export function registerErrorTransfer(): void {
  if (registered) return;
  const original = transferHandlers.get('throw');
  if (!original) throw new Error('comlink has no "throw" transfer handler to replace; is this comlink 4?');
  // The value comlink hands us is `{ value, [throwMarker]: 0 }`; throwMarker is private, so we
  // keep comlink's own canHandle and replace only the (de)serialisation.
  const handler: TransferHandler<{ value: unknown }, ThrownValue> = {
    canHandle: (v): v is { value: unknown } => original.canHandle(v),
    serialize: ({ value }) => [serializeThrown(value), []],
    deserialize: (s) => {
      throw deserializeThrown(s);
    },
  };
  transferHandlers.set('throw', handler as TransferHandler<unknown, unknown>);
  registered = true;
}

export function serializeThrown(value: unknown): ThrownValue {
  if (value instanceof Error || (typeof value === 'object' && value !== null && 'message' in value && 'name' in value)) {
    const e = value as Error & { code?: unknown };
    const out: SerializedError = { name: String(e.name), message: String(e.message) };
    if (typeof e.code === 'string') out.code = e.code;
    if (typeof e.stack === 'string') out.stack = e.stack;
    return { isError: true, value: out };
  }
  return { isError: false, value };
}

/** A StrataError when the code is one of ours; otherwise an Error with the same name and message. */
export function deserializeThrown(s: ThrownValue): unknown {
  if (!s.isError) return s.value;
  const { name, message, code, stack } = s.value;
  let e: Error;
  if (code !== undefined && CODES.has(code)) e = new StrataError(code as ErrorCode, message);
  else {
    e = new Error(message);
    e.name = name;
    if (code !== undefined) (e as Error & { code?: string }).code = code;
  }
  // Keep the worker's stack (where it happened) under the local one (who called).
  if (stack) e.stack = `${stack}\n    --- across the worker boundary ---\n${e.stack ?? ''}`;
  return e;
}
