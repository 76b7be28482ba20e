/**
 * Heartbeats over a {@link Link}, so that a peer that vanished without closing anything (its
 * machine lost power, its network cable pulled, its process stopped) is noticed: a beat goes out
 * every `intervalMs` (default 1 s), and when nothing at all has come from the peer for
 * `deadAfterMs` (default 5 s) the link closes. Any message counts as a sign of life.
 *
 * The beat is the message `{t: 'link:beat'}`, reserved: it never reaches the listener, and the
 * application must not send it. Both sides must run heartbeats (the network links do).
 */
import { LinkEnd, realClock, type Clock, type Link, type TimerHandle } from '../../consistency/link.js';

export interface HeartbeatOptions {
  /** a beat is sent this often (default 1000 ms) */
  intervalMs?: number;
  /** the link closes after this long without a message from the peer (default 5000 ms) */
  deadAfterMs?: number;
  clock?: Clock;
}

export const HEARTBEAT_MS = 1000;
export const DEAD_AFTER_MS = 5000;
export const BEAT = 'link:beat';

function isBeat(m: unknown): boolean {
  return typeof m === 'object' && m !== null && (m as { t?: unknown }).t === BEAT && Object.keys(m).length === 1;
}

/** `link` with heartbeats; the returned link owns `link` (listen on it no more). */
export function heartbeatLink<Out = unknown>(link: Link, options: HeartbeatOptions = {}): Link<Out> {
  const clock = options.clock ?? realClock;
  const intervalMs = options.intervalMs ?? HEARTBEAT_MS;
  const deadAfterMs = options.deadAfterMs ?? DEAD_AFTER_MS;
  const end = new LinkEnd();
  let heard = clock.now();
  let timer: TimerHandle | undefined;

  const tick = () => {
    timer = undefined;
    if (end.closed) return;
    if (clock.now() - heard >= deadAfterMs) {
      finish(`the peer was silent for ${deadAfterMs} ms (no heartbeat); it is gone or its network is`);
      link.close();
      return;
    }
    link.send({ t: BEAT });
    timer = clock.setTimeout(tick, Math.min(intervalMs, deadAfterMs));
  };

  function finish(reason: string): boolean {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    return end.end(reason);
  }

  link.listen({
    message(m) {
      heard = clock.now();
      if (!isBeat(m)) end.deliver(m);
    },
    close: (reason) => {
      finish(reason);
    },
  });
  tick();
  return {
    send(msg) {
      if (!end.closed) link.send(msg);
    },
    listen: (h) => end.listen(h),
    close() {
      if (finish('closed')) link.close();
    },
  };
}
