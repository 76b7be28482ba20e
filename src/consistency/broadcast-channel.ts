/**
 * Tabs (and workers) of one origin: a BroadcastChannel named `stratadisk:group:<group>` carries
 * addressed messages, and a Web Lock of the same name elects the host — the one context that
 * opens the volumes (taking their writer locks) and coordinates. When the host's tab dies its
 * lock is released and the next waiting tab becomes host; members see a new host announced (or
 * the old one silent) and their link closes, which thaws them at once.
 *
 * Envelope on the channel: `{ k: 'announce' | 'who' | 'msg' | 'close', from, to?, m? }`. Other
 * tabs of the origin are trusted no more than a socket peer: envelopes are checked, and the
 * messages inside are validated by the host and the participants.
 */
import { LinkEnd, type Link } from './link.js';
import type { GroupHost } from './host.js';

export interface BroadcastOptions {
  /** the host announces itself this often (default 1 s) */
  heartbeatMs?: number;
  /** a member whose host is silent this long closes its link (default 5 s) */
  deadAfterMs?: number;
}

type Envelope =
  | { k: 'announce'; from: string }
  | { k: 'who'; from: string }
  | { k: 'msg'; from: string; to: string; m: unknown }
  | { k: 'close'; from: string; to: string };

function envelope(x: unknown): Envelope | undefined {
  const o = x as Partial<Record<string, unknown>> | null;
  if (typeof o !== 'object' || o === null || typeof o.from !== 'string' || o.from.length > 128) return undefined;
  if (o.k === 'announce' || o.k === 'who') return o as Envelope;
  if ((o.k === 'msg' || o.k === 'close') && typeof o.to === 'string') return o as Envelope;
  return undefined;
}

export function channelName(group: string): string {
  return `stratadisk:group:${group}`;
}

function randomId(): string {
  return globalThis.crypto.randomUUID();
}

/** Serve `host` to the group's members on the BroadcastChannel. */
export function serveBroadcast(host: GroupHost, group: string, options: BroadcastOptions = {}): { hostId: string; close(): void } {
  const hostId = randomId();
  const channel = new BroadcastChannel(channelName(group));
  const links = new Map<string, LinkEnd>();
  const post = (e: Envelope) => {
    try {
      channel.postMessage(e);
    } catch {
      // closed channel: nothing to tell
    }
  };
  const announce = () => post({ k: 'announce', from: hostId });
  const timer = setInterval(announce, options.heartbeatMs ?? 1000);
  channel.onmessage = (ev) => {
    const e = envelope(ev.data);
    if (!e) return;
    if (e.k === 'who') announce();
    if ((e.k !== 'msg' && e.k !== 'close') || e.to !== hostId) return;
    let end = links.get(e.from);
    if (e.k === 'close') {
      links.delete(e.from);
      end?.end('the member closed');
      return;
    }
    if (!end) {
      if (links.size >= 1024) return;
      const member = e.from;
      const fresh = new LinkEnd();
      end = fresh;
      links.set(member, fresh);
      host.attach({
        send: (m) => {
          if (!fresh.closed) post({ k: 'msg', from: hostId, to: member, m });
        },
        listen: (h) => fresh.listen(h),
        close: () => {
          if (links.get(member) === fresh) links.delete(member);
          if (fresh.end('closed')) post({ k: 'close', from: hostId, to: member });
        },
      });
    }
    end.deliver(e.m);
  };
  announce();
  return {
    hostId,
    close() {
      clearInterval(timer);
      for (const [member, end] of links) if (end.end('the host closed')) post({ k: 'close', from: hostId, to: member });
      links.clear();
      channel.close();
    },
  };
}

/**
 * A link to the group's current host. Messages wait until a host has announced itself. The link
 * closes when another host is announced, or when the host is silent for `deadAfterMs`.
 */
export function connectBroadcast<Out = unknown>(group: string, options: BroadcastOptions = {}): Link<Out> {
  const me = randomId();
  const channel = new BroadcastChannel(channelName(group));
  const end = new LinkEnd();
  const deadAfterMs = options.deadAfterMs ?? 5000;
  let host: string | undefined;
  let heard = 0;
  const queue: unknown[] = [];
  const post = (e: Envelope) => {
    try {
      channel.postMessage(e);
    } catch {
      // closed channel
    }
  };
  const watchdog = setInterval(() => {
    if (host !== undefined && performance.now() - heard > deadAfterMs) finish(`the host was silent for ${deadAfterMs} ms`);
  }, Math.max(50, Math.min(1000, deadAfterMs / 4)));
  function finish(reason: string): void {
    if (!end.end(reason)) return;
    clearInterval(watchdog);
    channel.close();
  }
  channel.onmessage = (ev) => {
    const e = envelope(ev.data);
    if (!e) return;
    if (e.k === 'announce') {
      if (host === undefined) {
        host = e.from;
        heard = performance.now();
        for (const m of queue.splice(0)) post({ k: 'msg', from: me, to: host, m });
      } else if (e.from === host) {
        heard = performance.now();
      } else {
        finish('another host took over the group');
      }
      return;
    }
    if (e.from !== host || (e.k !== 'msg' && e.k !== 'close') || e.to !== me) return;
    heard = performance.now();
    if (e.k === 'close') finish('the host closed the link');
    else end.deliver(e.m);
  };
  post({ k: 'who', from: me });
  return {
    send(m) {
      if (end.closed) return;
      if (host === undefined) queue.push(m);
      else post({ k: 'msg', from: me, to: host, m });
    },
    listen: (h) => end.listen(h),
    close() {
      if (host !== undefined && !end.closed) post({ k: 'close', from: me, to: host });
      finish('closed');
    },
  };
}

export interface Election {
  /** resolves when this context has become the host */
  readonly elected: Promise<void>;
  readonly isHost: boolean;
  /** give up hosting (or stop waiting for it) */
  release(): Promise<void>;
}

/**
 * Web Locks election: `lead` runs in the one context of the origin that holds the lock
 * `stratadisk:group:<group>`, and the value it returns (a stop function) runs when the lock is
 * given up. Contexts wait in line; a closed or crashed tab releases its lock.
 */
export function electHost(group: string, lead: () => Promise<() => void | Promise<void>>): Election {
  const abort = new AbortController();
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let resolveElected!: () => void;
  const elected = new Promise<void>((r) => (resolveElected = r));
  let isHost = false;
  const done = navigator.locks
    .request(channelName(group), { signal: abort.signal }, async () => {
      isHost = true;
      const stop = await lead();
      resolveElected();
      await released;
      await stop();
      isHost = false;
    })
    .catch(() => {});
  return {
    elected,
    get isHost() {
      return isHost;
    },
    async release() {
      abort.abort();
      release();
      await done;
    },
  };
}
