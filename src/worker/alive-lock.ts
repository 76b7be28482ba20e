/**
 * A worker's life as a Web Lock, so that a client learns when the worker is gone without polling
 * it. The worker holds a lock of a unique name for as long as it lives; a client asks for the
 * same lock, which the browser grants only once the holder is gone (terminated, crashed, its
 * page closed): the grant is the news. No timer, so a worker busy for minutes is never taken for
 * dead. Web Locks are per origin and need a secure context (https, localhost); without them
 * (Node, plain http) neither side does anything. Browsers fire no event on a Worker or its ports
 * when it is terminated, which is why this exists.
 */

interface LockManagerLike {
  request(name: string, options: { signal?: AbortSignal }, callback: () => unknown): Promise<unknown>;
}

function lockManager(): LockManagerLike | undefined {
  return (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
}

let held: Promise<string | undefined> | undefined;

/**
 * Worker side: take this worker's alive lock (once) and keep it until the worker ends. Resolves
 * with the lock's name once it is held, or `undefined` where there are no Web Locks or the
 * request failed.
 */
export function holdAliveLock(): Promise<string | undefined> {
  held ??= new Promise<string | undefined>((resolve) => {
    const locks = lockManager();
    if (!locks) return resolve(undefined);
    const name = `stratadisk:alive:${crypto.randomUUID()}`;
    locks
      .request(name, {}, () => {
        resolve(name);
        return new Promise<never>(() => {}); // held for the worker's whole life
      })
      .catch(() => resolve(undefined));
  });
  return held;
}

/**
 * Client side: call `onGone` once the holder of lock `name` is gone. Returns a function that
 * stops watching (and withdraws the request).
 */
export function watchAliveLock(name: string, onGone: () => void): () => void {
  const locks = lockManager();
  if (!locks) return () => {};
  const stop = new AbortController();
  locks
    .request(name, { signal: stop.signal }, () => {
      if (!stop.signal.aborted) onGone();
    })
    .catch(() => {}); // withdrawn (AbortError), or no lock manager after all
  return () => stop.abort();
}
