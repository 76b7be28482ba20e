/**
 * A page and a Node server over WebSocket (src/replication/links/websocket.ts with the browser's
 * own WebSocket; the server is test/browser/replication/ws-server.global.ts, an echo): the
 * token handshake with WebCrypto, messages with payloads up to 4 MiB echoed in order, a wrong
 * token refused. Imported through the package's neutral entry, as an app would: `ws` (Node only)
 * must not be pulled into the page.
 */
import { describe, expect, inject, it } from 'vitest';
import { connectReplicaWs } from '../../../src/index.js';

describe('WebSocket link: page <-> Node server', () => {
  it('authenticates, and gets 300 messages (up to 4 MiB) echoed in order', async () => {
    const { url, token } = inject('replicaWs');
    const link = await connectReplicaWs<object>(url, { token, deadAfterMs: 120_000 });
    const got: Record<string, unknown>[] = [];
    let wake = () => {};
    link.listen({ message: (m) => (got.push(m as Record<string, unknown>), wake()), close: () => wake() });
    const size = (i: number) => (i % 100 === 50 ? 4 << 20 : (i * 131) % 5000);
    for (let i = 0; i < 300; i++) {
      const data = new Uint8Array(size(i));
      if (data.length) data[data.length - 1] = i & 0xff;
      link.send({ i, data });
    }
    while (got.length < 300) await new Promise<void>((r) => (wake = r));
    const bad = got.filter((m, i) => {
      const d = m.data as Uint8Array;
      return m.i !== i || d.length !== size(i) || (d.length > 0 && d[d.length - 1] !== (i & 0xff));
    });
    expect(bad).toEqual([]);
    link.close();
  });

  it('is refused with another token', async () => {
    const { url } = inject('replicaWs');
    await expect(connectReplicaWs(url, { token: 'not-the-token-0123456789' })).rejects.toMatchObject({ code: 'permission-denied' });
  });
});
