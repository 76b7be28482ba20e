/**
 * Seeded mutation fuzz of what an unauthenticated peer controls (2,000 cases each in `npm
 * test`, 100,000 with STRATADISK_LONG=1): the token handshake (a server fed a client's
 * handshake with one mutation: a field changed, added or removed, a message dropped, repeated,
 * swapped or replaced by junk) succeeds exactly when the first three messages still form a valid
 * handshake, and otherwise fails with permission-denied and closes the link; WebSocket messages
 * (a frame cut, extended, bit-flipped, two frames in one, text) deliver the one message a valid
 * frame holds or close the link, never throw, and deliver nothing after the close; BroadcastChannel
 * envelopes parse or are ignored, never throw.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../../../src/consistency/framing.js';
import { localLinkPair } from '../../../../src/consistency/local.js';
import type { Link } from '../../../../src/consistency/link.js';
import { isStrataError } from '../../../../src/errors.js';
import { authenticateLink, parseAuthMessage } from '../../../../src/replication/links/auth.js';
import { parseEnvelope } from '../../../../src/replication/links/broadcast.js';
import { webSocketLink, type WebSocketLike } from '../../../../src/replication/links/websocket.js';
import { Rng } from '../../helpers/random.js';
import { Inbox } from './kinds.js';

const long = process.env.STRATADISK_LONG === '1';
const CASES = long ? 100_000 : 2_000;
const TOKEN = randomBytes(24).toString('base64url');

function hmac(role: string, c: string, s: string): string {
  return createHmac('sha256', TOKEN).update(`stratadisk link auth v1\0stratadisk-replication\0${role}\0${c}\0${s}`).digest('hex');
}

function junk(rng: Rng): unknown {
  return rng.pick<() => unknown>([
    () => null,
    () => 0,
    () => -1,
    () => 1.5,
    () => '',
    () => 'x',
    () => 'a'.repeat(64),
    () => randomHex(rng),
    () => randomHex(rng).toUpperCase(),
    () => [],
    () => ({}),
    () => true,
    () => new Uint8Array(rng.int(40)),
    () => ({ t: 'auth-ok' }),
    () => ({ t: 'auth-hello', v: 1, role: 'client', nonce: randomHex(rng) }),
    () => ({ t: 'auth-proof', proof: randomHex(rng) }),
    () => 'client',
    () => 'server',
    () => 1,
  ])();
}

function randomHex(rng: Rng): string {
  let s = '';
  for (let i = 0; i < 64; i++) s += '0123456789abcdef'[rng.int(16)];
  return s;
}

/** One mutation of a message (which may leave it unchanged in meaning: the oracle decides). */
function mutateMessage(m: Record<string, unknown>, rng: Rng): unknown {
  const o: Record<string, unknown> = { ...m };
  const keys = Object.keys(o);
  switch (rng.int(6)) {
    case 0:
      delete o[rng.pick(keys)];
      return o;
    case 1:
      o[rng.pick([...keys, 'extra', 'data', '__proto__x'])] = junk(rng);
      return o;
    case 2: {
      const k = rng.pick(keys);
      const v = o[k];
      if (typeof v === 'string' && v.length > 0) {
        const i = rng.int(v.length);
        o[k] = v.slice(0, i) + rng.pick(['0', 'f', 'g', 'Z', '', '00']) + v.slice(i + 1);
      } else o[k] = junk(rng);
      return o;
    }
    case 3:
      return junk(rng);
    case 4:
      o.t = rng.pick(['auth-hello', 'auth-proof', 'auth-ok', 'write', '']);
      return o;
    default:
      o.v = rng.pick([0, 1, 2, '1']);
      return o;
  }
}

/** The oracle: the server succeeds exactly when the first three messages form a valid handshake. */
function validHandshake(seq: unknown[], serverNonce: string): boolean {
  if (seq.length < 3) return false;
  const h = parseAuthMessage(seq[0]);
  const p = parseAuthMessage(seq[1]);
  const k = parseAuthMessage(seq[2]);
  if (h?.t !== 'auth-hello' || h.role !== 'client' || h.nonce === serverNonce) return false;
  if (p?.t !== 'auth-proof' || p.proof !== hmac('client', h.nonce, serverNonce)) return false;
  return k?.t === 'auth-ok';
}

describe('fuzz: token handshake', () => {
  it(`a mutated handshake succeeds exactly when still valid, else fails closed (${CASES} cases)`, async () => {
    const rng = new Rng(0x5eed17);
    let succeeded = 0;
    for (let c = 0; c < CASES; c++) {
      const [attacker, victim] = localLinkPair<unknown>();
      const at = new Inbox(attacker as Link<object>);
      const result = authenticateLink(victim, { token: TOKEN, role: 'server', timeoutMs: 3_600_000 }).then(
        (l) => ({ ok: true as const, l }),
        (e: unknown) => ({ ok: false as const, e }),
      );
      await at.count(1);
      const serverNonce = at.messages[0]!.nonce as string;
      const nonce = randomHex(rng);
      const seq: unknown[] = [{ t: 'auth-hello', v: 1, role: 'client', nonce }, { t: 'auth-proof', proof: hmac('client', nonce, serverNonce) }, { t: 'auth-ok' }];
      const i = rng.int(seq.length);
      switch (rng.int(6)) {
        case 0:
          seq.splice(i, 1);
          break;
        case 1:
          seq.splice(i, 0, seq[i]);
          break;
        case 2: {
          const j = rng.int(seq.length);
          [seq[i], seq[j]] = [seq[j], seq[i]];
          break;
        }
        case 3:
          seq.splice(i, 0, junk(rng));
          break;
        default:
          seq[i] = mutateMessage(seq[i] as Record<string, unknown>, rng);
      }
      // the hello's nonce may have changed: prove over the nonce actually sent, when it parses
      const h = parseAuthMessage(seq[0]);
      const p = parseAuthMessage(seq[1]);
      if (h?.t === 'auth-hello' && p?.t === 'auth-proof' && p.proof === hmac('client', nonce, serverNonce) && rng.int(2) === 0) seq[1] = { t: 'auth-proof', proof: hmac('client', h.nonce, serverNonce) };
      for (const m of seq) attacker.send(m);
      attacker.close();
      const r = await result;
      const expected = validHandshake(seq, serverNonce);
      if (r.ok !== expected) throw new Error(`case ${c}: ${JSON.stringify(seq)} -> ${r.ok ? 'accepted' : String(r.e)}`);
      if (!r.ok) {
        expect(isStrataError(r.e, 'permission-denied')).toBe(true);
        await at.closed();
      } else {
        succeeded++;
        r.l.close();
      }
    }
    // the fuzzer reaches both outcomes
    expect(succeeded).toBeGreaterThan(0);
    expect(succeeded).toBeLessThan(CASES);
  });
});

/** A WebSocket stand-in the test feeds by hand. */
class FakeWs implements WebSocketLike {
  binaryType = 'arraybuffer';
  readyState = 1;
  closedWith: number | undefined;
  private listeners = new Map<string, ((ev: never) => void)[]>();
  send(): void {}
  close(code?: number): void {
    this.readyState = 3;
    this.closedWith = code;
  }
  addEventListener(type: string, l: (ev: never) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), l]);
  }
  removeEventListener(type: string, l: (ev: never) => void): void {
    this.listeners.set(type, (this.listeners.get(type) ?? []).filter((x) => x !== l));
  }
  emit(type: string, ev: unknown): void {
    for (const l of this.listeners.get(type) ?? []) (l as (e: unknown) => void)(ev);
  }
}

describe('fuzz: WebSocket messages', () => {
  it(`each message is one valid frame, delivered, or the link closes; nothing after (${CASES} cases)`, () => {
    const rng = new Rng(0xf4a3e);
    let delivered = 0;
    let closed = 0;
    for (let c = 0; c < CASES; c++) {
      const ws = new FakeWs();
      const link = webSocketLink(ws);
      const got: unknown[] = [];
      const closes: string[] = [];
      link.listen({ message: (m) => got.push(m), close: (r) => closes.push(r) });
      const msgs = 1 + rng.int(4);
      for (let k = 0; k < msgs; k++) {
        const frame = encodeFrame(rng.int(2) ? { t: 'w', k, data: rng.bytes(rng.int(300)) } : { t: 'x', k, s: 'é'.repeat(rng.int(10)) });
        let bytes: unknown = frame;
        switch (rng.int(8)) {
          case 0:
            bytes = frame.subarray(0, rng.int(frame.length));
            break;
          case 1: {
            const b = new Uint8Array(frame.length + 1 + rng.int(10));
            b.set(frame);
            bytes = b;
            break;
          }
          case 2: {
            const b = frame.slice();
            b[rng.int(b.length)]! ^= 1 << rng.int(8);
            bytes = b;
            break;
          }
          case 3: {
            const b = new Uint8Array(frame.length * 2);
            b.set(frame);
            b.set(frame, frame.length);
            bytes = b;
            break;
          }
          case 4:
            bytes = 'text';
            break;
          case 5:
            bytes = frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length);
            break;
          default:
        }
        const before = got.length;
        const wasClosed = closes.length > 0;
        expect(() => ws.emit('message', { data: bytes })).not.toThrow();
        if (wasClosed) expect(got.length).toBe(before);
        else expect(got.length - before + (closes.length > 0 ? 1 : 0)).toBe(1);
      }
      expect(closes.length).toBeLessThanOrEqual(1);
      if (closes.length) {
        closed++;
        expect(ws.closedWith).toBeDefined();
      }
      delivered += got.length;
    }
    expect(delivered).toBeGreaterThan(0);
    expect(closed).toBeGreaterThan(0);
  });
});

describe('fuzz: BroadcastChannel envelopes', () => {
  it(`parse to a well-typed envelope or nothing, never throw (${CASES} cases)`, () => {
    const rng = new Rng(0xb0ad);
    for (let c = 0; c < CASES; c++) {
      const base: Record<string, unknown> = { k: rng.pick(['syn', 'ack', 'msg', 'beat', 'fin']), from: 'a', to: 'b', sid: 's1', ps: 's2', n: rng.int(5), m: { x: 1 } };
      const x = rng.int(4) === 0 ? junk(rng) : mutateMessage(base, rng);
      let e: ReturnType<typeof parseEnvelope>;
      expect(() => (e = parseEnvelope(x))).not.toThrow();
      if (e!) {
        expect(typeof e.from === 'string' && typeof e.to === 'string' && typeof e.sid === 'string').toBe(true);
        if (e.k === 'msg') expect(Number.isSafeInteger(e.n) && e.n! >= 0).toBe(true);
      }
    }
  });
});
