/**
 * The TCP and WebSocket replica servers: closing a server closes every link it handed over (the
 * client sees the close) and stops listening (a new client finds nothing there).
 */
import { describe, expect, it } from 'vitest';
import type { Link } from '../../../../src/consistency/link.js';
import { connectReplicaTcp, listenReplicaTcp } from '../../../../src/replication/links/tcp.js';
import { connectReplicaWs } from '../../../../src/replication/links/websocket.js';
import { listenReplicaWs } from '../../../../src/replication/links/websocket-server.js';
import { Inbox, SLOW, TOKEN } from './kinds.js';

const kinds = {
  tcp: { listen: listenReplicaTcp, connect: connectReplicaTcp },
  websocket: { listen: listenReplicaWs, connect: connectReplicaWs },
};

describe.each(Object.keys(kinds) as (keyof typeof kinds)[])('replica server over %s', (kind) => {
  it('closes the links it handed over when it closes, and stops listening', async () => {
    const accepted: Link[] = [];
    let both!: () => void;
    const handedOver = new Promise<void>((r) => (both = r));
    const server = await kinds[kind].listen({ token: TOKEN, ...SLOW, onLink: (l) => accepted.push(l) === 2 && both() });
    const clients = [await kinds[kind].connect<object>(server.url, { token: TOKEN, ...SLOW }), await kinds[kind].connect<object>(server.url, { token: TOKEN, ...SLOW })];
    const inboxes = clients.map((c) => new Inbox(c));
    // a client is through once it has checked the server; the server once it has the client's ok
    await handedOver;
    await server.close();
    for (const i of inboxes) await i.closed();
    for (const i of inboxes) expect(i.closes).toHaveLength(1);
    expect(accepted).toHaveLength(2);
    await expect(kinds[kind].connect(server.url, { token: TOKEN })).rejects.toMatchObject({ code: 'not-found' });
  });
});
