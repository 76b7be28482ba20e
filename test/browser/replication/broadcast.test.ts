/**
 * The tab-to-tab replication link (src/replication/links/broadcast.ts) in Chromium, with two
 * ends in one page (the channel delivers between any two BroadcastChannel objects of the
 * origin): they find each other, carry messages in order with payloads up to 4 MiB, report the
 * close once; the token handshake runs on top with the browser's WebCrypto; a silent peer (a tab
 * that closed: browsers report nothing) is closed by the heartbeat.
 */
import { describe, expect, it } from 'vitest';
import type { Link } from '../../../src/consistency/link.js';
import { authenticateLink } from '../../../src/replication/links/auth.js';
import { broadcastLink } from '../../../src/replication/links/broadcast.js';

const fresh = () => `test:${crypto.randomUUID()}`;

function inbox(link: Link<object>) {
  const messages: Record<string, unknown>[] = [];
  const closes: string[] = [];
  let wake = () => {};
  link.listen({
    message: (m) => {
      messages.push(m as Record<string, unknown>);
      wake();
    },
    close: (r) => {
      closes.push(r);
      wake();
    },
  });
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise<void>((r) => (wake = r));
  };
  return { messages, closes, until };
}

function pattern(i: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let j = 0; j < n; j += 4096) b[j] = (i + j) & 0xff;
  b[n - 1] = i & 0xff;
  return b;
}

describe('broadcastLink in Chromium', () => {
  it('opens between two ends, delivers 1,000 messages in order (up to 4 MiB), and reports the close once', async () => {
    const name = fresh();
    const [a, b] = await Promise.all([broadcastLink<object>(name, { self: 'a', peer: 'b', deadAfterMs: 120_000 }), broadcastLink<object>(name, { self: 'b', peer: 'a', deadAfterMs: 120_000 })]);
    const atB = inbox(b);
    const atA = inbox(a);
    const size = (i: number) => (i % 250 === 100 ? 4 << 20 : (i * 37) % 3000);
    for (let i = 0; i < 1000; i++) a.send({ i, data: pattern(i, size(i)) });
    b.send({ back: true });
    await atB.until(() => atB.messages.length === 1000);
    await atA.until(() => atA.messages.length === 1);
    const bad = atB.messages.filter((m, i) => {
      const d = m.data as Uint8Array;
      return m.i !== i || d.length !== size(i) || (d.length > 0 && (d[0] !== (i & 0xff) || d[d.length - 1] !== (i & 0xff)));
    });
    expect(bad).toEqual([]);
    a.close();
    expect(() => a.send({ late: 1 })).not.toThrow();
    await atB.until(() => atB.closes.length > 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(atB.closes).toHaveLength(1);
    expect(atA.closes).toHaveLength(1);
    expect(atB.messages).toHaveLength(1000);
  });

  it('runs the token handshake on top with WebCrypto: the same token passes, another is refused', async () => {
    const token = 'browser-test-token-0123456789';
    const pair = async () => {
      const name = fresh();
      return Promise.all([broadcastLink(name, { self: 'a', peer: 'b' }), broadcastLink(name, { self: 'b', peer: 'a' })]);
    };
    const [x, y] = await pair();
    const [a, b] = await Promise.all([authenticateLink<object>(x, { token, role: 'client' }), authenticateLink<object>(y, { token, role: 'server' })]);
    const atB = inbox(b);
    a.send({ hello: 'from a' });
    await atB.until(() => atB.messages.length === 1);
    expect(atB.messages).toEqual([{ hello: 'from a' }]);
    a.close();
    const [u, v] = await pair();
    const results = await Promise.allSettled([authenticateLink(u, { token, role: 'client' }), authenticateLink(v, { token: 'another-token-0123456789', role: 'server' })]);
    for (const r of results) expect(r.status === 'rejected' && (r.reason as { code: string }).code).toBe('permission-denied');
  });

  it('closes the link when the peer falls silent (a closed tab says nothing)', async () => {
    const name = fresh();
    // a hand-made peer: answers the handshake, then nothing
    const ch = new BroadcastChannel(name);
    ch.onmessage = (ev) => {
      const e = ev.data as { k: string; sid: string; to: string };
      if (e.to === 'b' && e.k === 'syn') ch.postMessage({ k: 'ack', from: 'b', to: 'a', sid: 'silent-peer', ps: e.sid });
    };
    const link = await broadcastLink<object>(name, { self: 'a', peer: 'b', heartbeatMs: 50, deadAfterMs: 300 });
    const at = inbox(link);
    await at.until(() => at.closes.length > 0);
    expect(at.closes[0]).toMatch(/silent for 300 ms/);
    ch.close();
  });
});
