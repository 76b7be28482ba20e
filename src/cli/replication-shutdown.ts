import type { ReplicationHost } from '../replication/node-host.js';

/**
 * Stop an NBD server whose volume replicates, in order, so that no write escapes the sessions'
 * bitmaps and nothing is written to the volume's replication files once it is closed (another
 * process may open it from then on):
 * - the caller keeps the volume open (`closeVolume` given): the server stops reading requests and
 *   drains them (the clients' last writes still reach the secondaries), then the sessions end
 *   (each secondary flushes what it applied; what it lacks stays in the session's bitmap), then
 *   the volume closes;
 * - the server owns the volume (serve-nbd): the sessions freeze first (the new data generation
 *   and the bitmap are written while the volume is still held; the last writes of the clients
 *   are recorded out of sync and resynchronised next time), then the server drains and closes
 *   the volume, then the sessions end.
 * Writes held by policy `block` would keep the server from draining: those sessions are closed
 * as soon as the server stops reading requests, which releases the held writes (they are
 * recorded out of sync).
 */
export async function closeReplicatedServer(server: { close(): Promise<void> }, host: ReplicationHost | null, log: (line: string) => void, closeVolume?: () => Promise<void>): Promise<void> {
  if (!host || host.sessions.length === 0) {
    await server.close();
    await host?.close();
    await closeVolume?.();
    return;
  }
  let lines: string[];
  if (!closeVolume) await host.freeze('the server is stopping');
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
