/**
 * Mutual token authentication on a fresh {@link Link}, before anything else crosses it. Both
 * sides hold the same token (from the environment or a 0600 file, never argv). Each side sends a
 * fresh random nonce; each proves it knows the token with HMAC-SHA256(token, label | its role |
 * client nonce | server nonce) and checks the other's proof (WebCrypto `verify`, a constant-time
 * comparison). Binding the role stops a reflected proof, and the nonces a replayed one. A side
 * hands the link over only when it has checked the peer's proof and the peer has said it checked
 * ours, so no application message ever crosses before both sides are sure.
 *
 * ```
 * -> {t:'auth-hello', v:1, role, nonce}     (64 hex digits, 32 random bytes)
 * -> {t:'auth-proof', proof}                (after the peer's hello; 64 hex digits)
 * -> {t:'auth-ok'}                          (after the peer's proof checked out)
 * ```
 *
 * One attempt, within a time limit (default 10 s). Any failure closes the link: a wrong proof
 * is `permission-denied`, a malformed or out-of-order message too (the peer has not shown it may
 * talk to us), silence `timeout`. No message ever contains the token. WebCrypto only
 * (`globalThis.crypto.subtle`), so the same code runs in browsers, workers and Node.
 */
import { StrataError } from '../../errors.js';
import { LinkEnd, realClock, type Clock, type Link } from '../../consistency/link.js';
import { registerSecret } from '../../util/redact.js';

export type AuthRole = 'client' | 'server';

export interface AuthOptions {
  /** the shared token (at least 16 characters) */
  token: string;
  /** the side that connected is the client; the side that accepted is the server */
  role: AuthRole;
  /** time for the whole handshake (default 10 s) */
  timeoutMs?: number;
  /** what the token is for; both sides must agree (default 'stratadisk-replication') */
  purpose?: string;
  clock?: Clock;
  /** called once the peer's proof checked out (a transport may stop bounding what it buffers) */
  onVerified?: () => void;
}

export const AUTH_TIMEOUT_MS = 10_000;
export const AUTH_VERSION = 1;
const NONCE_BYTES = 32;
const HEX64 = /^[0-9a-f]{64}$/;

const encoder = new TextEncoder();

function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

function fromHex(s: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function keysOf(o: object): string[] {
  return Object.keys(o).sort();
}

/** A handshake message, or undefined when `m` is anything else (untrusted input). */
export function parseAuthMessage(m: unknown): { t: 'auth-hello'; role: AuthRole; nonce: string } | { t: 'auth-proof'; proof: string } | { t: 'auth-ok' } | undefined {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return undefined;
  const o = m as Record<string, unknown>;
  const keys = keysOf(o).join(',');
  if (o.t === 'auth-hello' && keys === 'nonce,role,t,v' && o.v === AUTH_VERSION && (o.role === 'client' || o.role === 'server') && typeof o.nonce === 'string' && HEX64.test(o.nonce)) {
    return { t: 'auth-hello', role: o.role, nonce: o.nonce };
  }
  if (o.t === 'auth-proof' && keys === 'proof,t' && typeof o.proof === 'string' && HEX64.test(o.proof)) return { t: 'auth-proof', proof: o.proof };
  if (o.t === 'auth-ok' && keys === 't') return { t: 'auth-ok' };
  return undefined;
}

function proofInput(purpose: string, role: AuthRole, clientNonce: string, serverNonce: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(`stratadisk link auth v${AUTH_VERSION}\0${purpose}\0${role}\0${clientNonce}\0${serverNonce}`);
}

/**
 * Run the handshake on `link` (listen on it yourself no more: the returned link is the one to
 * use). Resolves with the authenticated link, whose messages are the peer's after its
 * handshake; rejects with a StrataError after closing `link`.
 */
export function authenticateLink<Out = unknown>(link: Link, options: AuthOptions): Promise<Link<Out>> {
  const { token, role } = options;
  if (typeof token !== 'string' || token.length < 16) {
    link.close();
    return Promise.reject(new StrataError('invalid-argument', 'The replication token is missing or shorter than 16 characters; generate one with `openssl rand -base64 32` and give it through the environment or a 0600 file.'));
  }
  registerSecret(token);
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    link.close();
    return Promise.reject(new StrataError('unsupported', 'WebCrypto (crypto.subtle) is not available here; a browser needs a secure context (https or localhost) to authenticate a link.'));
  }
  const purpose = options.purpose ?? 'stratadisk-replication';
  const clock = options.clock ?? realClock;
  const timeoutMs = options.timeoutMs ?? AUTH_TIMEOUT_MS;
  const peerRole: AuthRole = role === 'client' ? 'server' : 'client';
  const myNonce = toHex(globalThis.crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
  const keyPromise = subtle.importKey('raw', encoder.encode(token), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  // the key is checked for use only after a failure could be reported; keep an early rejection quiet
  keyPromise.catch(() => {});

  return new Promise<Link<Out>>((resolve, reject) => {
    const end = new LinkEnd();
    let stage: 'hello' | 'proof' | 'ok' | 'done' | 'failed' = 'hello';
    let peerNonce = '';
    let peerChecked = false;
    let peerOk = false;
    /** events from the link, handled one at a time (the crypto is asynchronous) */
    let chain = Promise.resolve();

    const timer = clock.setTimeout(() => fail(new StrataError('timeout', `The peer did not complete authentication within ${timeoutMs} ms; the link is closed.`)), timeoutMs);

    function fail(e: StrataError): void {
      if (stage === 'done' || stage === 'failed') return;
      stage = 'failed';
      clock.clearTimeout(timer);
      link.close();
      end.end(e.message);
      reject(e);
    }

    function refuse(why: string): void {
      fail(new StrataError('permission-denied', `Authentication with the peer failed: ${why}. Both sides must hold the same token; the link is closed.`));
    }

    function maybeDone(): void {
      if (stage === 'failed' || !peerChecked || !peerOk) return;
      stage = 'done';
      clock.clearTimeout(timer);
      resolve({
        send(msg) {
          if (!end.closed) link.send(msg);
        },
        listen: (h) => end.listen(h),
        close() {
          if (end.end('closed')) link.close();
        },
      });
    }

    async function onMessage(m: unknown): Promise<void> {
      if (stage === 'done') {
        end.deliver(m);
        return;
      }
      if (stage === 'failed') return;
      const msg = parseAuthMessage(m);
      if (!msg) return refuse('its handshake message is malformed');
      if (stage === 'hello') {
        if (msg.t !== 'auth-hello') return refuse(`it sent ${msg.t} before its hello`);
        if (msg.role !== peerRole) return refuse(`it claims the ${msg.role} role, as we do`);
        if (msg.nonce === myNonce) return refuse('it echoed our nonce');
        peerNonce = msg.nonce;
        const [c, s] = role === 'client' ? [myNonce, peerNonce] : [peerNonce, myNonce];
        const sig = new Uint8Array(await subtle!.sign('HMAC', await keyPromise, proofInput(purpose, role, c, s)));
        if (stage !== 'hello') return;
        stage = 'proof';
        link.send({ t: 'auth-proof', proof: toHex(sig) });
        return;
      }
      if (stage === 'proof') {
        if (msg.t !== 'auth-proof') return refuse(`it sent ${msg.t} where its proof belongs`);
        const [c, s] = role === 'client' ? [myNonce, peerNonce] : [peerNonce, myNonce];
        const ok = await subtle!.verify('HMAC', await keyPromise, fromHex(msg.proof), proofInput(purpose, peerRole, c, s));
        if (stage !== 'proof') return;
        if (!ok) return refuse('its proof does not match our token');
        stage = 'ok';
        peerChecked = true;
        options.onVerified?.();
        link.send({ t: 'auth-ok' });
        return maybeDone();
      }
      // stage 'ok': only the peer's confirmation may come now
      if (msg.t !== 'auth-ok' || peerOk) return refuse(`it sent ${msg.t} after its proof`);
      peerOk = true;
      maybeDone();
    }

    /** events waiting in `chain`: while any wait, new ones queue behind them (order) */
    let pending = 0;
    const run = (fn: () => Promise<void> | void) => {
      pending++;
      chain = chain
        .then(fn)
        .catch((e: unknown) => fail(e instanceof StrataError ? e : new StrataError('io', `Authentication failed: ${e instanceof Error ? e.message : String(e)}.`)))
        .finally(() => pending--);
    };

    link.listen({
      message: (m) => {
        // after the handover, messages go straight through once nothing is queued before them
        if (stage === 'done' && pending === 0) end.deliver(m);
        else run(() => onMessage(m));
      },
      close: (reason) => {
        const onClose = () => {
          if (stage === 'done') end.end(reason);
          else fail(new StrataError('permission-denied', `The peer closed the link during authentication (${reason}); it may hold another token.`));
        };
        if (stage === 'done' && pending === 0) onClose();
        else run(onClose);
      },
    });
    link.send({ t: 'auth-hello', v: AUTH_VERSION, role, nonce: myNonce });
  });
}
