/**
 * Fault injection for the IndexedDB store: wraps idb-keyval's store function so that chosen
 * `put` calls (counted over every store of the namespace) throw the browser's own error types,
 * the way a full disk surfaces in Chromium. Plug it in with `IdbNamespace.open(db, { wrapStore })`.
 * The throw happens inside a live transaction, after earlier puts of the same transaction were
 * issued, so it exercises the real abort/rollback path.
 */
import type { UseStore } from 'idb-keyval';

/** Chromium's spellings of "out of space" in IndexedDB. */
export const quotaExceeded = (n: number) => new DOMException(`Injected quota failure at put #${n}`, 'QuotaExceededError');
export const abortedForQuota = (n: number) =>
  new DOMException(`The transaction was aborted, so the request cannot be fulfilled. (QuotaExceededError: quota exceeded at put #${n})`, 'AbortError');

export interface PutFaults {
  wrap: (useStore: UseStore) => UseStore;
  /** Puts seen so far. */
  puts(): number;
  /** Make the `k`-th put from now (0 = the next one) throw `error`. */
  failIn(k: number, error?: (n: number) => unknown): void;
}

export function faultyStore(): PutFaults {
  let puts = 0;
  const planned = new Map<number, (n: number) => unknown>();
  const wrap =
    (useStore: UseStore): UseStore =>
    (mode, callback) =>
      useStore(mode, (store) =>
        callback(
          new Proxy(store, {
            get(target, prop) {
              const value = Reflect.get(target, prop, target) as unknown;
              if (typeof value !== 'function') return value;
              if (prop === 'put') {
                return (...args: unknown[]) => {
                  const n = puts++;
                  const error = planned.get(n);
                  if (error) throw error(n);
                  return (value as (...a: unknown[]) => unknown).apply(target, args);
                };
              }
              return (value as (...a: unknown[]) => unknown).bind(target);
            },
          }),
        ),
      );
  return { wrap, puts: () => puts, failIn: (k, error = quotaExceeded) => planned.set(puts + k, error) };
}
