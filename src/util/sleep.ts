import { StrataError } from '../errors.js';

/**
 * Wait `ms`, or reject with StrataError('aborted', `cancelled`) as soon as `signal` aborts (at
 * once when it already has). No timer or listener outlives the wait.
 */
export function abortableSleep(ms: number, signal: AbortSignal | undefined, cancelled: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new StrataError('aborted', cancelled));
    const onAbort = () => {
      clearTimeout(t);
      reject(new StrataError('aborted', cancelled));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
