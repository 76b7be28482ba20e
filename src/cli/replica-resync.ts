/**
 * A replica server's two kinds of client on one listener: replication primaries (handed to the
 * Secondary) and `stratadisk resync` clients (served the volume as a writable resync side,
 * src/resync/remote.ts). They are told apart by their first message (./first-message.ts: the
 * token handshake already happened, so both are trusted to the same degree). One at a time: a
 * resync while a primary is connected is refused with `locked`, and so is a primary while a
 * resync runs; each is logged like the sessions.
 *
 * A resync writes the volume outside the replication stream, so before its first write the role
 * record forgets the data generation (as `replication demote --discard-my-data` does): the
 * next primary finds a fresh secondary and copies everything, never trusting a bitmap that did
 * not see those writes. A `--verify` (no write) changes nothing.
 */
import type { Link } from '../consistency/link.js';
import { StrataError } from '../errors.js';
import { SegmentSums } from '../resync/segment-sums.js';
import { serveResyncSide } from '../resync/remote.js';
import { VolumeSide, type ResyncSide } from '../resync/side.js';
import { isResyncHello, routeByFirstMessage } from '../replication/first-message.js';
import { LIMITS } from '../replication/protocol.js';
import { FRESH_GENERATION } from '../replication/roles.js';
import type { Secondary } from '../replication/secondary.js';
import { watchSecondaryLink } from '../replication/secondary-log.js';

export interface ReplicaDispatcher {
  /** an authenticated link from the listener */
  onLink(link: Link, remote: string): void;
  /** Resolves when no resync runs (its checksums recorded); call after the listener closed its links. */
  idle(): Promise<void>;
  /** a resync is being served */
  readonly resyncing: boolean;
}

export function replicaDispatcher(secondary: Secondary, say: (text: string) => void): ReplicaDispatcher {
  let running: Promise<void> | null = null;
  let runningFrom = '';

  const primary = (link: Link, remote: string) => {
    if (running) {
      const message = `${secondary.label} is being resynchronised by \`stratadisk resync\` from ${runningFrom}; connect again when it has finished.`;
      say(`refused a primary from ${remote}: locked: a resync from ${runningFrom} is running`);
      link.send({ t: 'refuse', code: 'locked', message });
      link.close();
      return;
    }
    say(`a primary connected from ${remote}`);
    secondary.accept(watchSecondaryLink(link, secondary, say));
  };

  const resync = (link: Link, first: unknown, remote: string) => {
    const id = Number.isSafeInteger((first as { id?: unknown }).id) ? (first as { id: number }).id : 0;
    const st = secondary.status();
    const busy = st.connected ? `a primary is connected (session ${st.session ?? '?'})` : running ? `a resync from ${runningFrom} is running` : null;
    if (busy) {
      say(`refused a resync from ${remote}: locked: ${busy}`);
      link.send({ t: 'error', id, code: 'locked', message: `${secondary.label} is busy: ${busy}. Stop it first (a primary: stop \`replicate\` or \`stratadisk replication freeze\` on it), then resync.` });
      link.close();
      return;
    }
    runningFrom = remote;
    say(`a resync client connected from ${remote}`);
    running = serveOne(secondary, link, say, remote).finally(() => {
      running = null;
    });
  };

  return {
    onLink(link, remote) {
      routeByFirstMessage(link, (first, replay) => (isResyncHello(first) ? resync(replay, first, remote) : primary(replay, remote)));
    },
    async idle() {
      while (running) await running;
    },
    get resyncing() {
      return running !== null;
    },
  };
}

async function serveOne(secondary: Secondary, link: Link, say: (text: string) => void, remote: string): Promise<void> {
  const volume = secondary.volume;
  let sums: SegmentSums | null = null;
  try {
    sums = await SegmentSums.open(volume);
  } catch (e) {
    // its checksums cannot be kept: serve it hashing everything
    say(`resync from ${remote}: the volume's checksums are not used (${(e as Error).message})`);
  }
  let wrote = false;
  const side = new ForgetOnWrite(new VolumeSide(volume, sums), async () => {
    await secondary.role.update((s) => {
      // promoted meanwhile (`replication promote`): it is nobody's copy to overwrite now
      if (s.role === 'primary') throw new StrataError('locked', `${secondary.label} was promoted to primary; nothing was written.`);
      return s.gen.current === FRESH_GENERATION && s.peer === null && !s.consistent
        ? s
        : { ...s, role: s.role === 'none' ? 'none' : 'secondary', consistent: false, peer: null, content: null, gen: { current: FRESH_GENERATION, history: (s.gen.current === FRESH_GENERATION ? s.gen.history : [s.gen.current, ...s.gen.history]).slice(0, LIMITS.maxHistory) } };
    });
    wrote = true;
    say(`resync from ${remote}: writing; the next primary copies everything (its data generation is forgotten)`);
  });
  const served = serveResyncSide(link, side, { writable: true });
  const reason = await served.closed;
  try {
    // a write the link delivered before it closed may still be running
    await side.stop();
    await volume.flush();
    await sums?.close();
  } catch (e) {
    say(`resync from ${remote}: closing failed: ${(e as Error).message}`);
  }
  say(`resync from ${remote} ended (${reason}): ${served.wire.received} bytes received, ${served.wire.sent} sent${wrote ? '' : ', nothing written'}`);
}

/** A side that runs `before` (once, to completion) ahead of its first write. */
class ForgetOnWrite implements ResyncSide {
  private marked: Promise<void> | null = null;
  private stopped = false;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly inner: VolumeSide,
    private readonly before: () => Promise<void>,
  ) {}

  get label(): string {
    return this.inner.label;
  }
  get size(): number {
    return this.inner.size;
  }
  get segmentSize(): number {
    return this.inner.segmentSize;
  }
  get writable(): boolean {
    return this.inner.writable;
  }
  get identity(): string {
    return this.inner.identity;
  }
  get bytesHashed(): number {
    return this.inner.bytesHashed;
  }
  known(first: number, count: number) {
    return this.inner.known(first, count);
  }
  hash(list: readonly number[]) {
    return this.inner.hash(list);
  }
  read(offset: number, length: number) {
    return this.inner.read(offset, length);
  }
  /** Refuse writes from now on; resolves when those in flight are done. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.inflight]);
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    if (this.stopped) return Promise.reject(new StrataError('closed', `${this.label} is no longer served.`));
    const p = this.write1(offset, data);
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  private async write1(offset: number, data: Uint8Array): Promise<void> {
    // a failed mark is retried by the next write (and refuses it meanwhile)
    this.marked ??= this.before().catch((e: unknown) => {
      this.marked = null;
      throw e;
    });
    await this.marked;
    return this.inner.write(offset, data);
  }
  flush() {
    return this.inner.flush();
  }
}
