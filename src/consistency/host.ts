/**
 * The host of a consistency group: the one thread, tab or process that holds the volumes of the
 * set open for writing (a volume has one writer) and runs the coordinator. Members attach over
 * any transport's {@link Link}; the host registers them with the coordinator, serves their block
 * I/O on the same link, and drops a member whose link closes or whose heartbeats stop (which
 * aborts an attempt that counts on it).
 */
import { StrataError, isStrataError } from '../errors.js';
import { Coordinator, type CoordinatorOptions, type ParticipantHandle, type SnapshotTarget } from './coordinator.js';
import type { WritableVolume } from './gate.js';
import { realClock, type Clock, type Link, type TimerHandle } from './link.js';
import { PROTOCOL_VERSION, parseToHost, type GroupVolumeInfo, type SetSnapshot, type ToHost, type ToMember } from './protocol.js';

/** Requests a member may send before it is registered (they wait for the end of an attempt). */
const MAX_EARLY = 256;

/** A volume the host serves and snapshots: {@link Volume} and RemoteVolume are both one. */
export interface HostVolume extends WritableVolume, SnapshotTarget {}

export interface GroupHostOptions extends CoordinatorOptions {
  /** members send a heartbeat this often (default 1 s) */
  heartbeatMs?: number;
  /** a member silent this long is dead (default 5 s; 0 = rely on the transport's close only) */
  deadAfterMs?: number;
}

interface Member extends ParticipantHandle {
  id: number;
  name: string;
  link: Link<ToMember>;
  welcomed: boolean;
  gone: boolean;
  lastHeard: number;
  /** I/O that arrived before the welcome (held: a snapshot may be running) */
  early: ToHost[];
}

export class GroupHost {
  readonly coordinator: Coordinator;
  private readonly volumes: Map<string, HostVolume>;
  private readonly members = new Set<Member>();
  private readonly clock: Clock;
  private readonly heartbeatMs: number;
  private readonly deadAfterMs: number;
  private nextMember = 1;
  private reaper: TimerHandle | undefined;
  private closed = false;

  constructor(volumes: Record<string, HostVolume>, options: GroupHostOptions = {}) {
    const names = Object.keys(volumes);
    if (names.length === 0) throw new StrataError('invalid-argument', 'A consistency group needs at least one volume.');
    this.volumes = new Map(Object.entries(volumes));
    this.clock = options.clock ?? realClock;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.deadAfterMs = options.deadAfterMs ?? 5000;
    this.coordinator = new Coordinator(this.volumes, options);
  }

  /** Names of the registered members. */
  get participants(): string[] {
    return this.coordinator.participants;
  }

  /** A consistent snapshot of the set, started by the host itself. */
  snapshot(options: { name?: string } = {}): Promise<SetSnapshot> {
    return this.coordinator.snapshot(options);
  }

  /** Serve one member over `link`. */
  attach(link: Link<ToMember>): void {
    if (this.closed) {
      link.close();
      return;
    }
    const m: Member = {
      id: this.nextMember++,
      name: `member-${this.nextMember - 1}`,
      link,
      welcomed: false,
      gone: false,
      lastHeard: this.clock.now(),
      early: [],
      send: (msg) => link.send(msg),
    };
    this.members.add(m);
    this.startReaper();
    link.listen({
      message: (raw) => this.receive(m, raw),
      close: (reason) => this.drop(m, reason),
    });
  }

  private receive(m: Member, raw: unknown): void {
    if (m.gone) return;
    let msg: ToHost;
    try {
      msg = parseToHost(raw);
    } catch (e) {
      this.drop(m, e instanceof Error ? e.message : String(e));
      return;
    }
    m.lastHeard = this.clock.now();
    switch (msg.t) {
      case 'hello':
        if (msg.v !== PROTOCOL_VERSION) {
          this.drop(m, `protocol version ${msg.v}, expected ${PROTOCOL_VERSION}`);
          return;
        }
        if (m.welcomed) return;
        m.name = msg.name || m.name;
        void this.welcome(m);
        return;
      case 'prepared':
        this.coordinator.prepared(m, msg.attempt);
        return;
      case 'frozen':
        this.coordinator.frozen(m, msg.attempt);
        return;
      case 'veto':
        this.coordinator.veto(m, msg.attempt, msg.reason);
        return;
      case 'beat':
        return;
      case 'bye':
        this.drop(m, 'left the group');
        return;
      case 'snapshot':
        this.coordinator.snapshot(msg.name === undefined ? {} : { name: msg.name }).then(
          (snapshot) => m.send({ t: 'done', req: msg.req, snapshot }),
          (e) => this.fail(m, msg.req, e),
        );
        return;
      default:
        if (m.welcomed) this.io(m, msg);
        else if (m.early.length < MAX_EARLY) m.early.push(msg);
        else this.drop(m, `more than ${MAX_EARLY} requests before its registration`);
    }
  }

  /** Register `m` once no attempt is running, so it never writes during a freeze it is not part of. */
  private async welcome(m: Member): Promise<void> {
    while (this.coordinator.busy) await this.coordinator.whenIdle();
    if (m.gone || this.closed) return;
    // Join and welcome in one synchronous step: any attempt that starts later includes m.
    this.coordinator.join(m);
    m.welcomed = true;
    m.lastHeard = this.clock.now();
    const volumes: GroupVolumeInfo[] = [...this.volumes].map(([name, v]) => ({ name, size: v.size, blockSize: v.blockSize }));
    m.send({ t: 'welcome', member: m.id, volumes, heartbeatMs: this.heartbeatMs });
    const early = m.early;
    m.early = [];
    for (const msg of early) this.io(m, msg);
  }

  private io(m: Member, msg: ToHost): void {
    if (msg.t !== 'write' && msg.t !== 'zero' && msg.t !== 'flush' && msg.t !== 'read') return;
    const vol = this.volumes.get(msg.vol);
    if (!vol) {
      this.fail(m, msg.req, new StrataError('not-found', `The group has no volume "${msg.vol}".`));
      return;
    }
    let p: Promise<Uint8Array | void>;
    try {
      // Each call reaches the volume's FIFO lock synchronously, so requests run in arrival order.
      if (msg.t === 'write') p = vol.write(msg.offset, msg.data);
      else if (msg.t === 'zero') p = vol.writeZeroes(msg.offset, msg.length);
      else if (msg.t === 'flush') p = vol.flush();
      else p = vol.read(msg.offset, msg.length);
    } catch (e) {
      this.fail(m, msg.req, e);
      return;
    }
    p.then(
      (data) => m.send(data instanceof Uint8Array ? { t: 'done', req: msg.req, data } : { t: 'done', req: msg.req }),
      (e) => this.fail(m, msg.req, e),
    );
  }

  private fail(m: Member, req: number, e: unknown): void {
    const err = isStrataError(e) ? e : new StrataError('io', e instanceof Error ? e.message : String(e));
    m.send({ t: 'fail', req, code: err.code, message: err.message.slice(0, 1000) });
  }

  private drop(m: Member, reason: string): void {
    if (m.gone) return;
    m.gone = true;
    this.members.delete(m);
    this.coordinator.leave(m, reason);
    m.link.close();
  }

  private startReaper(): void {
    if (this.reaper !== undefined || this.deadAfterMs <= 0 || this.closed) return;
    this.reaper = this.clock.setTimeout(() => {
      this.reaper = undefined;
      const now = this.clock.now();
      for (const m of [...this.members]) {
        // Heartbeats start with the welcome; before it a member may still be loading, or waiting
        // for an attempt to end (at most the freeze limit), so it gets that much longer.
        const limit = m.welcomed ? this.deadAfterMs : this.deadAfterMs + this.coordinator.freezeLimitMs;
        if (now - m.lastHeard > limit) this.drop(m, m.welcomed ? `no heartbeat for ${Math.round(now - m.lastHeard)} ms` : `no hello within ${limit} ms`);
      }
      if (this.members.size > 0) this.startReaper();
    }, Math.max(1, Math.min(this.heartbeatMs, this.deadAfterMs)));
  }

  /** Abort a running attempt, drop every member (they thaw at once), stop serving. Volumes stay open. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.coordinator.close();
    this.clock.clearTimeout(this.reaper);
    for (const m of [...this.members]) this.drop(m, 'the host closed');
  }
}
