import { StrataError } from '../errors.js';
import { browserError } from './browser-errors.js';
import type { NamespaceLock } from './store.js';

/**
 * Takes the Web Lock `name` without waiting, or throws `locked` with `busyMessage`.
 *
 * The lock is held for as long as the promise returned by the request callback is pending, so
 * the callback returns a promise that `release()` resolves. Web Locks are per origin (shared by
 * every tab and worker of the site) and the browser drops a lock when the context holding it
 * goes away — a closed or crashed tab, a terminated worker — so a stale lock cannot outlive its
 * writer (unlike a lock file).
 */
export async function takeWebLock(name: string, busyMessage: string): Promise<NamespaceLock> {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (!locks) {
    throw new StrataError('unsupported', 'This browser context has no Web Locks (navigator.locks); stratadisk needs them to keep a second writer out. Use a secure context (https or localhost).');
  }
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let request!: Promise<unknown>;
  const granted = await new Promise<boolean>((resolve, reject) => {
    request = locks.request(name, { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock ? held : undefined;
    });
    request.catch((e: unknown) => reject(browserError(e, `take the lock ${name}`)));
  });
  if (!granted) throw new StrataError('locked', busyMessage);
  let done = false;
  return {
    // Resolves once the browser has actually let go (request() settles after the callback's
    // promise does), so a release followed at once by another lock() succeeds.
    release: async () => {
      if (done) return;
      done = true;
      release();
      await request.catch(() => {});
    },
  };
}
