/**
 * One conformance suite over every kind of replication link: the local pair behind the token
 * handshake, TCP and TLS on loopback, WebSocket plain and over TLS, and the BroadcastChannel
 * link. Ordered delivery of 10,000 messages with payloads from 0 B to 4 MiB (both directions at
 * once), the close seen once by each side, nothing delivered after a close, and send never
 * throwing on a closed link.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { dropTestTls, Inbox, KINDS } from './kinds.js';

const COUNT = 10_000;
const MiB = 1 << 20;

/** Payload size of message i: mostly small, every 500th large, the largest exactly 4 MiB. */
function sizeOf(i: number): number {
  if (i % 500 === 250) return [4 * MiB, 1, MiB + 3, 0, 2 * MiB - 1][(i / 500) % 5 | 0]!;
  if (i % 7 === 0) return 0;
  return (i * 2654435761) % 4096;
}

function payload(i: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let j = 0; j < n; j++) b[j] = (i * 31 + j * 7) & 0xff;
  return b;
}

function intact(i: number, data: unknown): boolean {
  if (!(data instanceof Uint8Array) || data.length !== sizeOf(i)) return false;
  for (let j = 0; j < data.length; j++) if (data[j] !== ((i * 31 + j * 7) & 0xff)) return false;
  return true;
}

afterAll(() => dropTestTls());

describe.each(Object.keys(KINDS))('link conformance: %s', (kind) => {
  it('delivers 10,000 messages in order, payloads 0 B to 4 MiB, both directions at once', async () => {
    const { a, b, done } = await KINDS[kind]!();
    const atB = new Inbox(b);
    const atA = new Inbox(a);
    for (let i = 0; i < COUNT; i++) {
      a.send({ t: 'm', i, data: payload(i, sizeOf(i)) });
      if (i % 10 === 0) b.send({ t: 'r', i, note: 'ü ☃' });
      // without data at all, now and then
      if (i % 1000 === 999) a.send({ t: 'plain', i });
    }
    await atB.count(COUNT + COUNT / 1000);
    await atA.count(COUNT / 10);
    let next = 0;
    const bad: string[] = [];
    for (const m of atB.messages) {
      if (m.t === 'plain') {
        if (m.i !== next - 1 || 'data' in m) bad.push(`plain after ${next - 1}`);
        continue;
      }
      if (m.t !== 'm' || m.i !== next || !intact(next, m.data)) bad.push(`message ${next}: got ${String(m.i)}`);
      next++;
    }
    expect(bad.slice(0, 5)).toEqual([]);
    expect(next).toBe(COUNT);
    expect(atA.messages.map((m) => m.i)).toEqual(Array.from({ length: COUNT / 10 }, (_, k) => k * 10));
    expect(atA.messages[0]!.note).toBe('ü ☃');
    expect(atA.closes).toEqual([]);
    expect(atB.closes).toEqual([]);
    a.close();
    b.close();
    await done();
  });

  it.each(['a', 'b'] as const)('when %s closes: messages sent before arrive, the other side sees close once, later sends are dropped and never throw', async (closer) => {
    const { a, b, done } = await KINDS[kind]!();
    const [self, other] = closer === 'a' ? [a, b] : [b, a];
    const atOther = new Inbox(other);
    const atSelf = new Inbox(self);
    for (let i = 0; i < 3; i++) self.send({ t: 'm', i, data: payload(i, 100) });
    self.close();
    self.close();
    expect(() => self.send({ t: 'after-close' })).not.toThrow();
    await atOther.closed();
    expect(atOther.messages.map((m) => m.i)).toEqual([0, 1, 2]);
    expect(() => other.send({ t: 'to-closed' })).not.toThrow();
    other.close();
    expect(() => other.send({ t: 'after-own-close' })).not.toThrow();
    // a round trip elsewhere (a fresh pair) lets anything still in flight arrive
    const probe = await KINDS[kind]!();
    const probeIn = new Inbox(probe.b);
    probe.a.send({ t: 'probe' });
    await probeIn.count(1);
    probe.a.close();
    probe.b.close();
    await probe.done();
    expect(atOther.closes).toHaveLength(1);
    expect(atSelf.closes).toHaveLength(1);
    expect(atOther.messages.map((m) => m.t)).toEqual(['m', 'm', 'm']);
    expect(atSelf.messages).toEqual([]);
    await done();
  });
});
