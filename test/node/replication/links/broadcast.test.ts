/**
 * The BroadcastChannel pair link in Node (Node has BroadcastChannel; test/browser/replication
 * runs it in Chromium): the two ends find each other whichever starts first, envelopes from other
 * ends or sessions are ignored, a silent peer (a closed tab) is noticed by heartbeats, a reloaded
 * peer ends the old session, a lost message closes the link, no peer times out.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { broadcastLink, pairChannelName, parseEnvelope } from '../../../../src/replication/links/broadcast.js';
import { Inbox } from './kinds.js';

const fresh = () => `test:${randomBytes(8).toString('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A hand-driven end on the channel: does the handshake as `self`, then does what the test says. */
async function fakePeer(name: string, self: string, peer: string) {
  const ch = new BroadcastChannel(name);
  const sid = `fake-${randomBytes(4).toString('hex')}`;
  let peerSid: string | undefined;
  const got: Record<string, unknown>[] = [];
  const opened = new Promise<void>((resolve) => {
    ch.onmessage = (ev: MessageEvent) => {
      const e = ev.data as Record<string, unknown>;
      if (e.to !== self) return;
      got.push(e);
      if (e.k === 'syn' || e.k === 'ack') {
        peerSid = e.sid as string;
        if (e.k === 'syn') ch.postMessage({ k: 'ack', from: self, to: peer, sid, ps: peerSid });
        else resolve();
      }
    };
  });
  ch.postMessage({ k: 'syn', from: self, to: peer, sid });
  return { ch, sid, got, opened, peerSid: () => peerSid!, post: (e: object) => ch.postMessage({ from: self, to: peer, sid, ps: peerSid, ...e }) };
}

describe('broadcastLink', () => {
  it('opens whichever end starts first (the other one a moment later), and carries messages both ways', async () => {
    const name = fresh();
    const a = broadcastLink<object>(name, { self: 'a', peer: 'b', heartbeatMs: 50 });
    await sleep(120);
    const b = await broadcastLink<object>(name, { self: 'b', peer: 'a', heartbeatMs: 50 });
    const la = await a;
    const atB = new Inbox(b);
    const atA = new Inbox(la);
    la.send({ x: 1, data: new Uint8Array([1, 2, 3]) });
    b.send({ y: 2 });
    await atB.count(1);
    await atA.count(1);
    expect(atB.messages[0]!.x).toBe(1);
    expect(atB.messages[0]!.data).toEqual(new Uint8Array([1, 2, 3]));
    expect(atA.messages).toEqual([{ y: 2 }]);
    la.close();
    await atB.closed();
    expect(atB.closes[0]).toMatch(/closed the link/);
  });

  it('ignores envelopes from other ends, to other ends, for other sessions, and malformed ones', async () => {
    const name = fresh();
    const [a, b] = await Promise.all([broadcastLink<object>(name, { self: 'a', peer: 'b' }), broadcastLink<object>(name, { self: 'b', peer: 'a' })]);
    const atB = new Inbox(b);
    const intruder = new BroadcastChannel(name);
    for (const e of [
      { k: 'msg', from: 'c', to: 'b', sid: 'x', ps: 'y', n: 0, m: { forged: 1 } },
      { k: 'msg', from: 'a', to: 'b', sid: 'x', ps: 'y', n: 0, m: { forged: 2 } },
      { k: 'fin', from: 'a', to: 'b', sid: 'x', ps: 'y' },
      { k: 'msg', from: 'a', to: 'z', sid: 'x', ps: 'y', n: 0, m: { forged: 3 } },
      'junk',
      null,
      { k: 'msg', from: 'a'.repeat(1000), to: 'b', sid: 'x', ps: 'y', n: 0, m: 1 },
    ])
      intruder.postMessage(e);
    a.send({ real: 1 });
    await atB.count(1);
    await sleep(50);
    expect(atB.messages).toEqual([{ real: 1 }]);
    expect(atB.closes).toEqual([]);
    intruder.close();
    a.close();
    b.close();
  });

  it('closes when the peer falls silent (a closed tab sends nothing), within its limit', async () => {
    const name = fresh();
    const fake = await fakePeer(name, 'b', 'a');
    const link = await broadcastLink<object>(name, { self: 'a', peer: 'b', heartbeatMs: 50, deadAfterMs: 300 });
    await fake.opened;
    const at = new Inbox(link);
    // the fake answers nothing more: as if its tab was closed
    await at.closed();
    expect(at.closes[0]).toMatch(/silent for 300 ms/);
    fake.ch.close();
  });

  it('closes when the peer restarts (a new session under the same name)', async () => {
    const name = fresh();
    const fake = await fakePeer(name, 'b', 'a');
    const link = await broadcastLink<object>(name, { self: 'a', peer: 'b', heartbeatMs: 50 });
    await fake.opened;
    const at = new Inbox(link);
    fake.ch.postMessage({ k: 'syn', from: 'b', to: 'a', sid: 'another-session' });
    await at.closed();
    expect(at.closes[0]).toMatch(/restarted/);
    fake.ch.close();
  });

  it('closes on a gap in the message numbers (a lost message)', async () => {
    const name = fresh();
    const fake = await fakePeer(name, 'b', 'a');
    const link = await broadcastLink<object>(name, { self: 'a', peer: 'b', heartbeatMs: 50 });
    await fake.opened;
    const at = new Inbox(link);
    fake.post({ k: 'msg', n: 0, m: { i: 0 } });
    fake.post({ k: 'msg', n: 2, m: { i: 2 } });
    await at.closed();
    expect(at.messages).toEqual([{ i: 0 }]);
    expect(at.closes[0]).toMatch(/message 1 .* was lost/);
    fake.ch.close();
  });

  it('rejects with timeout when no peer answers', async () => {
    await expect(broadcastLink(fresh(), { self: 'a', peer: 'b', heartbeatMs: 20, connectTimeoutMs: 100 })).rejects.toMatchObject({ code: 'timeout' });
  });

  it('names a pair the same from both ends and validates envelopes', () => {
    expect(pairChannelName('x', 'y')).toBe(pairChannelName('y', 'x'));
    expect(parseEnvelope({ k: 'msg', from: 'a', to: 'b', sid: 's', ps: 'p', n: -1, m: 1 })).toBeUndefined();
    expect(parseEnvelope({ k: 'beat', from: 'a', to: 'b', sid: 's' })).toBeUndefined();
    expect(parseEnvelope({ k: 'syn', from: 'a', to: 'b', sid: 's' })).toBeDefined();
  });

  it('refuses the same name at both ends', async () => {
    await expect(broadcastLink(fresh(), { self: 'a', peer: 'a' })).rejects.toMatchObject({ code: 'invalid-argument' });
  });
});

