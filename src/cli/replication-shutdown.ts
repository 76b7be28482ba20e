import type { ReplicationHost } from '../replication/node-host.js';

/**
 * Stop an NBD server whose volume replicates, in order: the clients' last writes still reach the
 * secondaries (the server stops reading requests and drains them), then the sessions end (each
 * secondary flushes what it applied; what it lacks stays in the session's bitmap), then the
 * volume closes (`closeVolume`, when the server was told to keep it open).
 *
 * Writes held by policy `block` (frozen sessions) would keep the server from draining: those
 * sessions are closed as soon as the server stops reading requests, which releases the held
 * writes (they are recorded out of sync).
 */
export async function closeReplicatedServer(server: { close(): Promise<void> }, host: ReplicationHost | null, log: (line: string) => void, closeVolume?: () => Promise<void>): Promise<void> {
  if (!host || host.sessions.length === 0) {
    await server.close();
    await host?.close();
    await closeVolume?.();
    return;
  }
  let lines: string[];
  if (host.holdsWrites) {
    const closing = server.close(); // stops reading requests at once
    lines = await host.close();
    await closing;
  } else {
    await server.close();
    lines = await host.close();
  }
  await closeVolume?.();
  for (const l of lines) log(l);
}
