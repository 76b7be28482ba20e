/**
 * Fault injection for replication tests (as src/store/fault.ts is for stores): a wrapper around
 * one end of a {@link Link} that drops, delays, reorders, duplicates messages and disconnects,
 * each direction after its own plan, deterministically for a seed, and counts what crossed.
 *
 * Messages are numbered per direction from 0 in the order they enter it (`out`: sent by this
 * end; `in`: received from the peer). A fault named by number hits that message; one given as a
 * probability draws from the direction's seeded generator (four draws per message, whatever the
 * plan, so a plan's choices do not shift when another probability changes).
 *
 * - drop: the message is lost.
 * - duplicate: it arrives twice in a row.
 * - reorder: it is held and arrives right after the next message (or before the close).
 * - delay: every message waits `delayMs` (a number, or a [min, max] range drawn per message)
 *   on `clock` (a fake clock in tests); delays keep the order, as a slow network does.
 * - disconnectAt: when message N would enter (a direction's count, or the plan's count of both
 *   directions together), it is not delivered and the link breaks: both ends see close.
 */
import { LinkEnd, realClock, type Clock, type Link, type TimerHandle } from '../../consistency/link.js';
import { localLinkPair } from '../../consistency/local.js';

export interface LinkFaultDirection {
  drop?: readonly number[];
  dropProbability?: number;
  duplicate?: readonly number[];
  duplicateProbability?: number;
  reorder?: readonly number[];
  reorderProbability?: number;
  /** ms, or a [min, max] range drawn per message */
  delayMs?: number | readonly [number, number];
  /** break the link when this message (0-based, this direction) would enter */
  disconnectAt?: number;
}

export interface LinkFaultPlan {
  seed?: number;
  /** messages this end sends */
  out?: LinkFaultDirection;
  /** messages this end receives */
  in?: LinkFaultDirection;
  /** break the link when this message (0-based, both directions counted together) would enter */
  disconnectAt?: number;
  /** the clock delays run on (default: real time) */
  clock?: Clock;
}

export interface LinkFaultCounters {
  /** messages that entered the direction */
  offered: number;
  /** messages that came out of it (a duplicate counts twice) */
  messages: number;
  /** their bytes: JSON plus `data` payload, as a frame would carry them */
  bytes: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  delayed: number;
}

export interface FaultLink<Out = unknown> extends Link<Out> {
  readonly stats: { readonly out: LinkFaultCounters; readonly in: LinkFaultCounters };
  /** break the link now (both ends see close) */
  disconnect(reason?: string): void;
  /** why the link broke, when a fault broke it */
  readonly brokenBy: string | undefined;
}

const encoder = new TextEncoder();

/** Bytes `msg` would take in a frame (src/consistency/framing.ts), without encoding its payload. */
export function messageBytes(msg: unknown): number {
  if (typeof msg !== 'object' || msg === null) return 0;
  const { data, ...rest } = msg as { data?: unknown };
  const payload = data instanceof Uint8Array ? data.length : 0;
  try {
    return 8 + encoder.encode(JSON.stringify(payload ? { ...rest, bin: 1 } : msg)).length + payload;
  } catch {
    return 8 + payload;
  }
}

/** mulberry32: small, deterministic; tests need repeatable choices, not good randomness. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function counters(): LinkFaultCounters {
  return { offered: 0, messages: 0, bytes: 0, dropped: 0, duplicated: 0, reordered: 0, delayed: 0 };
}

type Item = { msg: unknown } | { close: string };

/** One direction: numbering, faults, then an ordered delay queue in front of `emit`. */
class Direction {
  readonly stats = counters();
  private readonly random: () => number;
  private readonly drop: ReadonlySet<number>;
  private readonly duplicate: ReadonlySet<number>;
  private readonly reorder: ReadonlySet<number>;
  private held: unknown[] | undefined;
  private queue: { at: number; item: Item }[] = [];
  private timer: TimerHandle | undefined;
  private lastAt = 0;
  stopped = false;

  constructor(
    private readonly plan: LinkFaultDirection,
    seed: number,
    private readonly clock: Clock,
    private readonly emit: (item: Item) => void,
  ) {
    this.random = rng(seed);
    this.drop = new Set(plan.drop ?? []);
    this.duplicate = new Set(plan.duplicate ?? []);
    this.reorder = new Set(plan.reorder ?? []);
  }

  /** Number the next message; true when the plan breaks the link at it. */
  enter(): { k: number; disconnect: boolean } {
    const k = this.stats.offered++;
    return { k, disconnect: this.plan.disconnectAt === k };
  }

  push(k: number, msg: unknown): void {
    const [uDrop, uDup, uReorder, uDelay] = [this.random(), this.random(), this.random(), this.random()];
    const p = this.plan;
    if (this.drop.has(k) || uDrop < (p.dropProbability ?? 0)) {
      this.stats.dropped++;
      return;
    }
    const copies = [msg];
    if (this.duplicate.has(k) || uDup < (p.duplicateProbability ?? 0)) {
      this.stats.duplicated++;
      copies.push(msg);
    }
    const delay = this.delayOf(uDelay);
    if (this.held === undefined && (this.reorder.has(k) || uReorder < (p.reorderProbability ?? 0))) {
      this.stats.reordered++;
      this.held = copies;
      return;
    }
    for (const m of copies) this.schedule({ msg: m }, delay);
    this.release(delay);
  }

  /** The end of the direction: a held message goes first, then the close, after the queue. */
  close(reason: string): void {
    this.release(0);
    this.schedule({ close: reason }, 0);
  }

  /** Drop everything queued (the link broke). */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.held = undefined;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private release(delay: number): void {
    const held = this.held;
    this.held = undefined;
    if (held) for (const m of held) this.schedule({ msg: m }, delay);
  }

  private delayOf(u: number): number {
    const d = this.plan.delayMs;
    if (d === undefined) return 0;
    if (typeof d === 'number') return Math.max(0, d);
    const [lo, hi] = d;
    return Math.max(0, lo + Math.floor(u * (hi - lo + 1)));
  }

  private schedule(item: Item, delay: number): void {
    if (this.stopped) return;
    if ('msg' in item && delay > 0) this.stats.delayed++;
    const at = Math.max(this.lastAt, this.clock.now() + delay);
    this.lastAt = at;
    if (this.queue.length === 0 && at <= this.clock.now()) return this.out(item);
    this.queue.push({ at, item });
    this.arm();
  }

  private arm(): void {
    if (this.timer !== undefined || this.queue.length === 0) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      const now = this.clock.now();
      while (this.queue.length > 0 && this.queue[0]!.at <= now && !this.stopped) this.out(this.queue.shift()!.item);
      this.arm();
    }, Math.max(0, this.queue[0]!.at - this.clock.now()));
  }

  private out(item: Item): void {
    if ('msg' in item) {
      this.stats.messages++;
      this.stats.bytes += messageBytes(item.msg);
    }
    this.emit(item);
  }
}

/** `link` with the faults of `plan`; the returned link owns `link` (listen on it no more). */
export function faultLink<Out = unknown>(link: Link, plan: LinkFaultPlan = {}): FaultLink<Out> {
  const clock = plan.clock ?? realClock;
  const seed = plan.seed ?? 1;
  const end = new LinkEnd();
  let total = 0;
  let brokenBy: string | undefined;
  let closedHere = false;

  const outgoing = new Direction(plan.out ?? {}, seed, clock, (item) => {
    if ('msg' in item) link.send(item.msg);
    else link.close();
  });
  const incoming = new Direction(plan.in ?? {}, (seed ^ 0x5bd1e995) >>> 0, clock, (item) => {
    if ('msg' in item) end.deliver(item.msg);
    else end.end(item.close);
  });

  function disconnect(reason: string): void {
    if (brokenBy !== undefined) return;
    brokenBy = reason;
    outgoing.stop();
    incoming.stop();
    link.close();
    end.end(reason);
  }

  function enter(dir: Direction, name: string): number | undefined {
    const { k, disconnect: hit } = dir.enter();
    const n = total++;
    if (hit) disconnect(`fault: disconnected at ${name} message ${k}`);
    else if (plan.disconnectAt === n) disconnect(`fault: disconnected at message ${n}`);
    return brokenBy === undefined ? k : undefined;
  }

  link.listen({
    message(m) {
      if (brokenBy !== undefined || incoming.stopped) return;
      const k = enter(incoming, 'incoming');
      if (k !== undefined) incoming.push(k, m);
    },
    close(reason) {
      if (brokenBy === undefined) incoming.close(reason);
    },
  });

  return {
    stats: { out: outgoing.stats, in: incoming.stats },
    get brokenBy() {
      return brokenBy;
    },
    send(msg) {
      if (closedHere || end.closed || brokenBy !== undefined) return;
      const k = enter(outgoing, 'outgoing');
      if (k !== undefined) outgoing.push(k, msg);
    },
    listen: (h) => end.listen(h),
    close() {
      if (closedHere || brokenBy !== undefined) return;
      closedHere = true;
      end.end('closed');
      outgoing.close('closed');
    },
    disconnect: (reason = 'fault: disconnected') => disconnect(reason),
  };
}

/**
 * Two linked ends in this thread (src/consistency/local.ts) with `plan` on the first:
 * `plan.out` is first -> second, `plan.in` second -> first.
 */
export function faultLinkPair<A = unknown, B = unknown>(plan: LinkFaultPlan = {}): [FaultLink<A>, Link<B>] {
  const [a, b] = localLinkPair<A, B>();
  return [faultLink<A>(a as Link, plan), b];
}
