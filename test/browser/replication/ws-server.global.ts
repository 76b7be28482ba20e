/**
 * Global set-up of the browser project for the page <-> Node WebSocket test: a replica WebSocket
 * server (listenReplicaWs) on loopback that echoes every message of an authenticated link,
 * admitting the test page's origin only. The page gets its URL and token through `inject`.
 */
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { listenReplicaWs } from '../../../src/replication/links/websocket-server.js';

export interface ReplicaWsInfo {
  url: string;
  token: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    replicaWs: ReplicaWsInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const token = randomBytes(24).toString('base64url');
  // vitest picks the page's port when the browser starts (after this set-up): match its shape
  const testPage = (origin: string) => /^http:\/\/(localhost|127\.0\.0\.1):\d{1,5}$/.test(origin);
  const server = await listenReplicaWs({
    token,
    origins: testPage,
    deadAfterMs: 120_000,
    onLink: (link) =>
      link.listen({
        message: (m) => link.send(m as object),
        close: () => {},
      }),
  });
  project.provide('replicaWs', { url: server.url, token });
  return () => server.close();
}
