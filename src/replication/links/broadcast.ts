/**
 * A point-to-point link between two tabs (or workers) of one origin over a BroadcastChannel.
 * Both ends name themselves and each other (`self`, `peer`); every envelope carries its
 * sender's and receiver's names and session ids, so envelopes for other pairs on the channel are
 * ignored, and a reloaded tab (a new session id under the same name) is told apart from the one
 * before it.
 *
 * ```
 * {k:'syn',  from, to, sid}                 repeated until answered: "I am here"
 * {k:'ack',  from, to, sid, ps}             "I heard you" (ps: the session id heard)
 * {k:'msg',  from, to, sid, ps, n, m}       the n-th message of this session (0, 1, 2...)
 * {k:'beat', from, to, sid, ps}             heartbeat
 * {k:'fin',  from, to, sid, ps}             closed
 * ```
 *
 * The link opens when both ends have heard each other (`broadcastLink` resolves then). Browsers
 * report no closed tab, so each end sends a heartbeat every `heartbeatMs` and closes the link
 * when the peer has been silent `deadAfterMs`. A gap in the message numbers (a lost message),
 * or a new session from the peer, closes it too. Tabs of the origin can read and forge anything
 * on the channel: they are trusted as much as each other (add ./auth.ts on top to check a token).
 */
import { StrataError } from '../../errors.js';
import { LinkEnd, realClock, type Clock, type Link, type TimerHandle } from '../../consistency/link.js';

export interface BroadcastLinkOptions {
  /** this end's name (unique among the ends on the channel) */
  self: string;
  /** the other end's name */
  peer: string;
  /** heartbeats (and, before opening, hellos) this often (default 1000 ms) */
  heartbeatMs?: number;
  /** close after the peer is silent this long (default 5000 ms) */
  deadAfterMs?: number;
  /** reject when the peer has not answered within this time (default 10 s; Infinity waits) */
  connectTimeoutMs?: number;
  clock?: Clock;
}

type Kind = 'syn' | 'ack' | 'msg' | 'beat' | 'fin';
interface Envelope {
  k: Kind;
  from: string;
  to: string;
  sid: string;
  ps?: string;
  n?: number;
  m?: unknown;
}

const NAME_MAX = 128;
const KINDS = new Set<string>(['syn', 'ack', 'msg', 'beat', 'fin']);

/** The channel name for the pair (a, b), the same from both ends. */
export function pairChannelName(a: string, b: string): string {
  const [x, y] = a < b ? [a, b] : [b, a];
  return `stratadisk:link:${x}:${y}`;
}

function str(v: unknown, max = NAME_MAX): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max;
}

/** An envelope, or undefined when `x` is anything else (other tabs are untrusted input). */
export function parseEnvelope(x: unknown): Envelope | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const o = x as Record<string, unknown>;
  if (typeof o.k !== 'string' || !KINDS.has(o.k) || !str(o.from) || !str(o.to) || !str(o.sid, 64)) return undefined;
  if (o.k !== 'syn' && !str(o.ps, 64)) return undefined;
  if (o.k === 'msg' && (typeof o.n !== 'number' || !Number.isSafeInteger(o.n) || o.n < 0 || !('m' in o))) return undefined;
  return o as unknown as Envelope;
}

/**
 * Open a link to `peer` on the BroadcastChannel `channelName` (see {@link pairChannelName}).
 * Resolves when both ends have heard each other; rejects with `timeout` when the peer does not
 * answer within `connectTimeoutMs`.
 */
export function broadcastLink<Out = unknown>(channelName: string, options: BroadcastLinkOptions): Promise<Link<Out>> {
  const { self, peer } = options;
  if (!str(self) || !str(peer) || self === peer) return Promise.reject(new StrataError('invalid-argument', `A broadcast link needs two different names of 1 to ${NAME_MAX} characters (self, peer).`));
  const clock = options.clock ?? realClock;
  const heartbeatMs = options.heartbeatMs ?? 1000;
  const deadAfterMs = options.deadAfterMs ?? 5000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const sid = globalThis.crypto.randomUUID();
  const channel = new BroadcastChannel(channelName);
  const end = new LinkEnd();
  let peerSid: string | undefined;
  /** the peer has acknowledged our session */
  let acked = false;
  /** we have acknowledged the peer's session */
  let ackedPeer = false;
  let open = false;
  let sent = 0;
  let expect = 0;
  let heard = clock.now();
  let timer: TimerHandle | undefined;
  let deadline: TimerHandle | undefined;
  let settle!: { resolve: (l: Link<Out>) => void; reject: (e: unknown) => void };
  const opened = new Promise<Link<Out>>((resolve, reject) => (settle = { resolve, reject }));

  const post = (k: Kind, extra: Partial<Envelope> = {}): boolean => {
    try {
      channel.postMessage({ k, from: self, to: peer, sid, ...(peerSid !== undefined ? { ps: peerSid } : {}), ...extra });
      return true;
    } catch (e) {
      finish(`the channel failed: ${e instanceof Error ? e.message : String(e)}`);
      return false;
    }
  };

  function finish(reason: string, error?: StrataError): void {
    if (timer !== undefined) clock.clearTimeout(timer);
    if (deadline !== undefined) clock.clearTimeout(deadline);
    timer = deadline = undefined;
    if (!open) settle.reject(error ?? new StrataError('closed', `The broadcast link to ${peer} closed before it opened (${reason}).`));
    if (end.end(reason) || !open) {
      channel.onmessage = null;
      channel.close();
    }
  }

  const tick = () => {
    timer = undefined;
    if (end.closed) return;
    if (open && clock.now() - heard >= deadAfterMs) return finish(`the peer ${peer} was silent for ${deadAfterMs} ms (its tab closed or hangs)`);
    if (!post(open ? 'beat' : 'syn')) return;
    timer = clock.setTimeout(tick, Math.min(heartbeatMs, deadAfterMs));
  };

  const link: Link<Out> = {
    send(m) {
      if (!end.closed) post('msg', { n: sent++, m });
    },
    listen: (h) => end.listen(h),
    close() {
      if (!end.closed && peerSid !== undefined) post('fin');
      finish('closed');
    },
  };

  const maybeOpen = () => {
    if (open || !acked || peerSid === undefined) return;
    open = true;
    if (deadline !== undefined) clock.clearTimeout(deadline);
    deadline = undefined;
    settle.resolve(link);
  };

  channel.onmessage = (ev: MessageEvent) => {
    const e = parseEnvelope(ev.data);
    if (!e || e.from !== peer || e.to !== self || end.closed) return;
    if (e.k !== 'syn' && e.ps !== sid) return; // for another session of ours
    if (peerSid !== undefined && e.sid !== peerSid) {
      // the peer restarted (a reloaded tab): an open session is over; before opening, start again
      if (open) return finish(`the peer ${peer} restarted`);
      peerSid = undefined;
      acked = ackedPeer = false;
    }
    heard = clock.now();
    switch (e.k) {
      case 'syn':
        peerSid = e.sid;
        post('ack');
        ackedPeer = true;
        return maybeOpen();
      case 'ack':
        peerSid = e.sid;
        acked = true;
        if (!ackedPeer) {
          post('ack');
          ackedPeer = true;
        }
        return maybeOpen();
      case 'beat':
        return;
      case 'fin':
        return finish(`the peer ${peer} closed the link`);
      case 'msg':
        if (!open) {
          // the peer opened first (it saw our ack) and sent at once: its ack proves it heard us
          acked = true;
          maybeOpen();
        }
        if (e.n !== expect) return finish(`message ${expect} from ${peer} was lost (got ${e.n})`);
        expect++;
        end.deliver(e.m);
    }
  };
  if (Number.isFinite(connectTimeoutMs)) {
    deadline = clock.setTimeout(() => finish('no answer', new StrataError('timeout', `The peer ${peer} did not answer on the channel within ${connectTimeoutMs} ms; open it in another tab first.`)), connectTimeoutMs);
  }
  tick();
  return opened;
}
