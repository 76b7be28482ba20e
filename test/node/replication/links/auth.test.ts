/**
 * The token handshake on a bare link (src/replication/links/auth.ts): both sides prove the
 * token; a wrong token is refused on both sides, without the token in any message or log; a
 * silent peer times out; a recorded handshake replayed to a new server, a reflected proof, an
 * echoed nonce, two sides claiming the same role and malformed messages are refused and close
 * the link.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { localLinkPair } from '../../../../src/consistency/local.js';
import type { Link } from '../../../../src/consistency/link.js';
import { isStrataError, type StrataError } from '../../../../src/errors.js';
import { authenticateLink, parseAuthMessage } from '../../../../src/replication/links/auth.js';
import { FakeClock } from '../../consistency/fake-clock.js';
import { Inbox } from './kinds.js';

const TOKEN = randomBytes(24).toString('base64url');
const OTHER = randomBytes(24).toString('base64url');

/** Everything printed while a test runs. */
let printed: string[] = [];
beforeEach(() => {
  printed = [];
  for (const m of ['log', 'warn', 'error', 'info', 'debug'] as const) vi.spyOn(console, m).mockImplementation((...args: unknown[]) => void printed.push(args.map(String).join(' ')));
});
afterEach(() => vi.restoreAllMocks());

async function outcome<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: StrataError }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: StrataError) => ({ ok: false as const, error }),
  );
}

/** A raw end the test drives by hand, recording what arrives. */
function manual(link: Link<object>) {
  return new Inbox(link);
}

/** The proof a client holding `token` would send. */
function clientProof(token: string, clientNonce: string, serverNonce: string, role = 'client'): string {
  return createHmac('sha256', token).update(`stratadisk link auth v1\0stratadisk-replication\0${role}\0${clientNonce}\0${serverNonce}`).digest('hex');
}

describe('token handshake', () => {
  it('authenticates both sides with the same token; messages then pass both ways, in order', async () => {
    const [x, y] = localLinkPair();
    const [a, b] = await Promise.all([authenticateLink<object>(x, { token: TOKEN, role: 'client' }), authenticateLink<object>(y, { token: TOKEN, role: 'server' })]);
    const atB = new Inbox(b);
    const atA = new Inbox(a);
    for (let i = 0; i < 5; i++) a.send({ i });
    b.send({ hi: 1 });
    await atB.count(5);
    await atA.count(1);
    expect(atB.messages).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
    expect(atA.messages).toEqual([{ hi: 1 }]);
  });

  it('refuses a wrong token on both sides (permission-denied), closes the link, and never shows the token', async () => {
    const [x, y] = localLinkPair();
    const seen: unknown[] = [];
    const tap = (l: Link): Link => ({ ...l, send: (m) => (seen.push(m), l.send(m)) });
    const [c, s] = await Promise.all([outcome(authenticateLink(tap(x), { token: TOKEN, role: 'client' })), outcome(authenticateLink(tap(y), { token: OTHER, role: 'server' }))]);
    for (const r of [c, s]) {
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect(isStrataError(r.error, 'permission-denied')).toBe(true);
      const text = `${r.error.message} ${JSON.stringify(r.error)} ${String(r.error.stack)}`;
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(OTHER);
    }
    const wire = JSON.stringify(seen);
    expect(wire).not.toContain(TOKEN);
    expect(wire).not.toContain(OTHER);
    expect(printed).toEqual([]);
  });

  it('refuses a token shorter than 16 characters before sending anything', async () => {
    const [x, y] = localLinkPair();
    const peer = manual(y as Link<object>);
    const r = await outcome(authenticateLink(x, { token: 'short', role: 'client' }));
    expect(!r.ok && r.error.code).toBe('invalid-argument');
    await peer.closed();
    expect(peer.messages).toEqual([]);
  });

  it('times out on a silent peer and closes the link', async () => {
    const clock = new FakeClock();
    const [x, y] = localLinkPair();
    const peer = manual(y as Link<object>);
    const r = outcome(authenticateLink(x, { token: TOKEN, role: 'server', clock, timeoutMs: 10_000 }));
    await clock.advance(9_999);
    expect(peer.closes).toEqual([]);
    await clock.advance(1);
    const res = await r;
    expect(!res.ok && res.error.code).toBe('timeout');
    await peer.closed();
    expect(peer.messages.map((m) => m.t)).toEqual(['auth-hello']);
  });

  it('refuses a recorded handshake replayed to a new server (its nonce is fresh)', async () => {
    // record a real client's messages through a relay
    const [c, relayC] = localLinkPair();
    const [relayS, s] = localLinkPair();
    const recorded: object[] = [];
    relayC.listen({ message: (m) => (recorded.push(m as object), relayS.send(m)), close: () => relayS.close() });
    relayS.listen({ message: (m) => relayC.send(m), close: () => relayC.close() });
    const [okC, okS] = await Promise.all([authenticateLink(c, { token: TOKEN, role: 'client' }), authenticateLink(s, { token: TOKEN, role: 'server' })]);
    okC.close();
    okS.close();
    expect(recorded.map((m) => (m as { t: string }).t)).toEqual(['auth-hello', 'auth-proof', 'auth-ok']);
    // replay them to a fresh server
    const [attacker, victim] = localLinkPair<object>();
    const atAttacker = manual(attacker);
    const r = outcome(authenticateLink(victim, { token: TOKEN, role: 'server' }));
    attacker.send(recorded[0]!);
    await atAttacker.count(1);
    attacker.send(recorded[1]!);
    attacker.send(recorded[2]!);
    const res = await r;
    expect(!res.ok && res.error.code).toBe('permission-denied');
    await atAttacker.closed();
    expect(atAttacker.messages.map((m) => m.t)).toEqual(['auth-hello', 'auth-proof']);
  });

  it('refuses a reflected proof (the server proves the server role, never the client one)', async () => {
    const [attacker, victim] = localLinkPair<object>();
    const at = manual(attacker);
    const r = outcome(authenticateLink(victim, { token: TOKEN, role: 'server' }));
    attacker.send({ t: 'auth-hello', v: 1, role: 'client', nonce: randomBytes(32).toString('hex') });
    await at.count(2);
    expect(at.messages[1]!.t).toBe('auth-proof');
    attacker.send({ t: 'auth-proof', proof: at.messages[1]!.proof });
    const res = await r;
    expect(!res.ok && res.error.code).toBe('permission-denied');
    await at.closed();
  });

  it('refuses a peer that echoes our nonce, and two peers claiming the same role', async () => {
    const [attacker, victim] = localLinkPair<object>();
    const at = manual(attacker);
    const r = outcome(authenticateLink(victim, { token: TOKEN, role: 'server' }));
    await at.count(1);
    attacker.send({ ...at.messages[0]!, role: 'client' });
    const res = await r;
    expect(!res.ok && res.error.message).toMatch(/echoed our nonce/);
    const [x, y] = localLinkPair();
    const both = await Promise.all([outcome(authenticateLink(x, { token: TOKEN, role: 'client' })), outcome(authenticateLink(y, { token: TOKEN, role: 'client' }))]);
    for (const o of both) expect(!o.ok && o.error.code).toBe('permission-denied');
  });

  it('succeeds against a hand-made client that computes the proof (the documented protocol), then delivers its messages', async () => {
    const [attacker, victim] = localLinkPair<object>();
    const at = manual(attacker);
    const r = authenticateLink<object>(victim, { token: TOKEN, role: 'server' });
    const nonce = randomBytes(32).toString('hex');
    attacker.send({ t: 'auth-hello', v: 1, role: 'client', nonce });
    await at.count(1);
    const serverNonce = at.messages[0]!.nonce as string;
    attacker.send({ t: 'auth-proof', proof: clientProof(TOKEN, nonce, serverNonce) });
    await at.count(3);
    expect(at.messages[2]).toEqual({ t: 'auth-ok' });
    // the server's proof is the server-role HMAC
    expect(at.messages[1]!.proof).toBe(clientProof(TOKEN, nonce, serverNonce, 'server'));
    attacker.send({ t: 'auth-ok' });
    attacker.send({ app: 1 });
    const link = await r;
    const inbox = new Inbox(link);
    await inbox.count(1);
    expect(inbox.messages).toEqual([{ app: 1 }]);
  });

  const malformed: [string, unknown][] = [
    ['a string', 'hello'],
    ['null', null],
    ['an array', [1]],
    ['an application message first', { t: 'write', data: new Uint8Array(4) }],
    ['a hello with an extra key', { t: 'auth-hello', v: 1, role: 'client', nonce: 'a'.repeat(64), token: 'x' }],
    ['a hello of another version', { t: 'auth-hello', v: 2, role: 'client', nonce: 'a'.repeat(64) }],
    ['a hello with a short nonce', { t: 'auth-hello', v: 1, role: 'client', nonce: 'a'.repeat(62) }],
    ['a hello with an upper-case nonce', { t: 'auth-hello', v: 1, role: 'client', nonce: 'A'.repeat(64) }],
    ['a hello with a number nonce', { t: 'auth-hello', v: 1, role: 'client', nonce: 5 }],
    ['a hello with another role', { t: 'auth-hello', v: 1, role: 'admin', nonce: 'a'.repeat(64) }],
    ['a proof first', { t: 'auth-proof', proof: 'b'.repeat(64) }],
    ['ok first', { t: 'auth-ok' }],
  ];
  it.each(malformed)('closes the link on a malformed handshake message: %s', async (_name, msg) => {
    const [attacker, victim] = localLinkPair<unknown>();
    const at = manual(attacker as Link<object>);
    const r = outcome(authenticateLink(victim, { token: TOKEN, role: 'server' }));
    attacker.send(msg);
    const res = await r;
    expect(!res.ok && res.error.code).toBe('permission-denied');
    await at.closed();
  });

  it('parses only the three handshake messages', () => {
    expect(parseAuthMessage({ t: 'auth-ok' })).toEqual({ t: 'auth-ok' });
    expect(parseAuthMessage({ t: 'auth-ok', extra: 1 })).toBeUndefined();
    expect(parseAuthMessage({ t: 'auth-proof', proof: 'c'.repeat(64) })).toEqual({ t: 'auth-proof', proof: 'c'.repeat(64) });
  });
});
