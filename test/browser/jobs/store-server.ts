/** What test/browser/jobs/store-server.global.ts provides to the browser tests. */
export interface StoreServerInfo {
  /** the store server, http://127.0.0.1:P/ (a volume goes to `${url}NAME#token=${token}`) */
  url: string;
  token: string;
  /** GET `${verify}?volume=NAME`: {live, size, snapshots: {name: sha256}, check} read in Node */
  verify: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    storeServer: StoreServerInfo;
  }
}
