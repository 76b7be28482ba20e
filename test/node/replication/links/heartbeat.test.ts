/**
 * Heartbeats (src/replication/links/heartbeat.ts) on a fake clock: a link whose peer beats stays
 * open however long it is idle; a peer that falls silent is closed after `deadAfterMs` (both
 * ends see close); beats never reach the listener.
 */
import { describe, expect, it } from 'vitest';
import { localLinkPair } from '../../../../src/consistency/local.js';
import type { Link } from '../../../../src/consistency/link.js';
import { heartbeatLink } from '../../../../src/replication/links/heartbeat.js';
import { FakeClock } from '../../consistency/fake-clock.js';
import { Inbox } from './kinds.js';

describe('heartbeatLink', () => {
  it('keeps an idle link open while both sides beat, and hides the beats', async () => {
    const clock = new FakeClock();
    const [x, y] = localLinkPair();
    const a = heartbeatLink<object>(x, { intervalMs: 100, deadAfterMs: 500, clock });
    const b = heartbeatLink<object>(y, { intervalMs: 100, deadAfterMs: 500, clock });
    const atA = new Inbox(a);
    const atB = new Inbox(b);
    await clock.advance(10_000);
    a.send({ hello: 1 });
    await clock.advance(10);
    expect(atB.messages).toEqual([{ hello: 1 }]);
    expect(atA.messages).toEqual([]);
    expect(atA.closes).toEqual([]);
    expect(atB.closes).toEqual([]);
    a.close();
    await clock.advance(10);
    expect(atB.closes).toHaveLength(1);
  });

  it('closes the link when the peer is silent for deadAfterMs; the silent side sees the close too', async () => {
    const clock = new FakeClock();
    const [x, y] = localLinkPair<object>();
    const a = heartbeatLink<object>(x, { intervalMs: 100, deadAfterMs: 500, clock });
    const atA = new Inbox(a);
    const silent = new Inbox(y as Link<object>); // a peer that never beats
    await clock.advance(400);
    expect(atA.closes).toEqual([]);
    await clock.advance(200);
    expect(atA.closes).toHaveLength(1);
    expect(atA.closes[0]).toMatch(/silent for 500 ms/);
    expect(silent.closes).toHaveLength(1);
    // the silent peer saw only beats
    expect(silent.messages.every((m) => m.t === 'link:beat')).toBe(true);
  });

  it('counts any message as a sign of life', async () => {
    const clock = new FakeClock();
    const [x, y] = localLinkPair<object>();
    const a = heartbeatLink<object>(x, { intervalMs: 100, deadAfterMs: 500, clock });
    const atA = new Inbox(a);
    new Inbox(y as Link<object>);
    for (let t = 0; t < 20; t++) {
      y.send({ work: t });
      await clock.advance(300);
    }
    expect(atA.closes).toEqual([]);
    expect(atA.messages).toHaveLength(20);
  });
});
