/**
 * The coordinator and participant state machines on the same-thread transport with a fake
 * clock: the happy path (freeze, snapshot of every volume under one id, thaw, post-snapshot),
 * writes held (not failed) while frozen, veto, both VSS time limits, a participant dying (link
 * closed, heartbeats stopped), a coordinator dying (participants thaw by themselves at the
 * limit), a volume whose snapshot fails, members joining during an attempt.
 */
import { describe, expect, it } from 'vitest';
import { GroupHost, type HostVolume } from '../../../src/consistency/host.js';
import { localLinkPair } from '../../../src/consistency/local.js';
import { Participant, type ParticipantCallbacks } from '../../../src/consistency/participant.js';
import { parseToHost, parseToMember, type ToHost, type ToMember } from '../../../src/consistency/protocol.js';
import { WriteGate } from '../../../src/consistency/gate.js';
import type { Link } from '../../../src/consistency/link.js';
import { StrataError } from '../../../src/errors.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { FakeClock, settle } from './fake-clock.js';

const BS = 4096;

async function volumes(): Promise<{ a: Volume; b: Volume }> {
  const a = await Volume.create(new MemoryNamespace(), { size: 1 << 20, blockSize: BS });
  const b = await Volume.create(new MemoryNamespace(), { size: 1 << 20, blockSize: BS });
  return { a, b };
}

function join(host: GroupHost, name: string, clock: FakeClock, callbacks: ParticipantCallbacks = {}, hold = true): Participant {
  const [m, h] = localLinkPair<ToHost, ToMember>();
  host.attach(h);
  return new Participant(m, { name, clock, callbacks, hold });
}

/** Callbacks that log what happened to one participant. */
function recorder(log: string[], name: string, extra: ParticipantCallbacks = {}): ParticipantCallbacks {
  return {
    prepare: async (c) => {
      log.push(`${name} prepare ${c.attempt}`);
      return extra.prepare?.(c);
    },
    freeze: async (c) => {
      log.push(`${name} freeze ${c.attempt}`);
      return extra.freeze?.(c);
    },
    thaw: (c) => {
      log.push(`${name} thaw ${c.attempt} ${c.taken ? 'taken' : `aborted: ${c.reason}`}`);
    },
    postSnapshot: (id) => {
      log.push(`${name} post ${id}`);
    },
  };
}

function byte(v: Volume, offset: number): Promise<number> {
  return v.read(offset, 1).then((b) => b[0]!);
}

describe('consistency group state machine', () => {
  it('freezes everyone, snapshots every volume under one id, thaws, then reports the id', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock });
    const log: string[] = [];
    const p1 = join(host, 'p1', clock, recorder(log, 'p1'));
    const p2 = join(host, 'p2', clock, recorder(log, 'p2'));
    await Promise.all([p1.ready, p2.ready]);
    expect(host.participants.sort()).toEqual(['p1', 'p2']);
    await p1.volume('a').write(0, new Uint8Array(BS).fill(1));

    const snap = await p2.requestSnapshot('set-1');
    expect(snap).toMatchObject({ id: 'set-1', volumes: ['a', 'b'], participants: 2 });
    await settle();
    expect(a.snapshots().map((s) => s.name)).toEqual(['set-1']);
    expect(b.snapshots().map((s) => s.name)).toEqual(['set-1']);
    expect(log.filter((l) => l.startsWith('p1'))).toEqual(['p1 prepare 1', 'p1 freeze 1', 'p1 thaw 1 taken', 'p1 post set-1']);
    expect(log.filter((l) => l.startsWith('p2'))).toEqual(['p2 prepare 1', 'p2 freeze 1', 'p2 thaw 1 taken', 'p2 post set-1']);
    // Everyone prepared before anyone froze.
    expect(log.indexOf('p1 freeze 1')).toBeGreaterThan(log.indexOf('p2 prepare 1'));
    expect(log.indexOf('p2 freeze 1')).toBeGreaterThan(log.indexOf('p1 prepare 1'));
    expect(p1.snapshotsSeen).toEqual(['set-1']);
    expect(await byte(a.openSnapshot('set-1') as unknown as Volume, 0)).toBe(1);

    // A default name is generated; the host may start one too.
    const s2 = await host.snapshot();
    expect(s2.id).toMatch(/^cg-\d{8}T\d{9}Z-2$/);
    host.close();
  });

  it('holds writes issued while frozen and runs them after the snapshot, in order', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock });
    let release!: () => void;
    const slowFreeze = new Promise<void>((r) => (release = r));
    const p1 = join(host, 'p1', clock, { freeze: () => slowFreeze });
    const p2 = join(host, 'p2', clock);
    await Promise.all([p1.ready, p2.ready]);
    const fa = p2.freezable('a');

    const snap = host.snapshot({ name: 's' });
    await settle();
    expect(p2.frozen).toBe(true);
    let done = 0;
    const writes = [1, 2, 3].map((v) => fa.write(0, new Uint8Array(BS).fill(v)).then(() => done++));
    await settle();
    expect(done).toBe(0);
    expect(p2.gate.waiting).toBe(3);
    release();
    await snap;
    await Promise.all(writes);
    expect(done).toBe(3);
    // The snapshot has none of the held writes; the live volume has the last one.
    expect(await a.openSnapshot('s').read(0, 1)).toEqual(new Uint8Array([0]));
    expect(await byte(a, 0)).toBe(3);
    host.close();
  });

  it('waits for transactions already inside the gate before acknowledging', async () => {
    const gate = new WriteGate();
    let finishTx!: () => void;
    const tx = gate.run(() => new Promise<void>((r) => (finishTx = r)));
    let frozen = false;
    const f = gate.freeze().then(() => (frozen = true));
    await settle();
    expect(frozen).toBe(false);
    finishTx();
    await tx;
    await f;
    expect(frozen).toBe(true);
    gate.thaw();
  });

  it('a veto aborts: no snapshot anywhere, everyone thawed', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock });
    const log: string[] = [];
    const p1 = join(host, 'p1', clock, recorder(log, 'p1'));
    const p2 = join(host, 'db', clock, recorder(log, 'db', { freeze: () => ({ veto: 'a checkpoint is running' }) }));
    await Promise.all([p1.ready, p2.ready]);
    const err = await p1.requestSnapshot('v').catch((e: StrataError) => e);
    expect(err).toBeInstanceOf(StrataError);
    expect((err as StrataError).code).toBe('aborted');
    expect((err as StrataError).message).toContain('"db" vetoed the snapshot: a checkpoint is running');
    await settle();
    expect(a.snapshots()).toEqual([]);
    expect(b.snapshots()).toEqual([]);
    expect(p1.frozen || p2.frozen).toBe(false);
    expect(log).toContain('p1 thaw 1 aborted: Participant "db" vetoed the snapshot: a checkpoint is running');
    // A thrown error is a veto too.
    const p3 = join(host, 'thrower', clock, { freeze: () => Promise.reject(new Error('disk busy')) });
    await p3.ready;
    await expect(host.snapshot()).rejects.toThrow(/"db" vetoed|"thrower" vetoed/);
    host.close();
  });

  it('a veto at prepare aborts before anyone freezes; a prepare that never answers times out', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock, deadAfterMs: 0 });
    const log: string[] = [];
    const p1 = join(host, 'p1', clock, recorder(log, 'p1'));
    const p2 = join(host, 'busy', clock, recorder(log, 'busy', { prepare: () => ({ veto: 'compaction running' }) }));
    await Promise.all([p1.ready, p2.ready]);
    const err = (await host.snapshot().catch((e: StrataError) => e)) as StrataError;
    expect(err.code).toBe('aborted');
    expect(err.message).toContain('"busy" vetoed the snapshot: compaction running');
    await settle();
    expect(log.some((l) => l.includes('freeze'))).toBe(false);
    expect(log).toContain('p1 thaw 1 aborted: Participant "busy" vetoed the snapshot: compaction running');
    expect(a.snapshots()).toEqual([]);
    host.close();

    const host2 = new GroupHost({ a, b }, { clock, deadAfterMs: 0 });
    const slow = join(host2, 'slow', clock, { prepare: () => new Promise<void>(() => {}) });
    await slow.ready;
    let e2: StrataError | undefined;
    const attempt = host2.snapshot().catch((e: StrataError) => (e2 = e));
    await clock.advance(10_000);
    await attempt;
    expect(e2?.code).toBe('timeout');
    expect(e2?.message).toContain('"slow" did not get ready for the freeze within 10000 ms');
    expect(slow.frozen).toBe(false);
    host2.close();
  });

  it('a participant that does not freeze within the limit aborts the attempt (default 10 s)', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock, deadAfterMs: 0 });
    const log: string[] = [];
    const p1 = join(host, 'quick', clock, recorder(log, 'quick'));
    const p2 = join(host, 'stuck', clock, recorder(log, 'stuck', { freeze: () => new Promise<void>(() => {}) }));
    await Promise.all([p1.ready, p2.ready]);
    let err: StrataError | undefined;
    const attempt = host.snapshot().catch((e: StrataError) => (err = e));
    await clock.advance(9_999);
    expect(err).toBeUndefined();
    expect(p1.frozen).toBe(true);
    await clock.advance(1);
    await attempt;
    expect(err?.code).toBe('timeout');
    expect(err?.message).toContain('"stuck" did not freeze within 10000 ms');
    expect(p1.frozen).toBe(false);
    expect(p2.frozen).toBe(false);
    expect(a.snapshots()).toEqual([]);
    host.close();
  });

  it('a freeze that outlasts its limit (default 60 s) aborts, and snapshots finished late are deleted', async () => {
    const clock = new FakeClock();
    let finishSnapshot!: () => void;
    const made: string[] = [];
    const deleted: string[] = [];
    const slow: HostVolume = {
      size: 1 << 20,
      blockSize: BS,
      read: async (_o, n) => new Uint8Array(n),
      write: async () => {},
      writeZeroes: async () => {},
      flush: async () => {},
      snapshot: (name) =>
        new Promise((r) => {
          finishSnapshot = () => {
            made.push(name);
            r(undefined);
          };
        }),
      deleteSnapshot: async (name) => {
        deleted.push(name);
      },
    };
    const { a } = await volumes();
    const host = new GroupHost({ a, slow }, { clock, deadAfterMs: 0 });
    const p = join(host, 'p', clock);
    await p.ready;
    let err: StrataError | undefined;
    const attempt = host.snapshot({ name: 'late' }).catch((e: StrataError) => (err = e));
    await clock.advance(59_999);
    expect(p.frozen).toBe(true);
    await clock.advance(1);
    await attempt;
    expect(err?.code).toBe('timeout');
    expect(err?.message).toContain('longer than its limit of 60000 ms');
    expect(p.frozen).toBe(false);
    // The snapshot of `a` was taken at once: it is deleted when the slow one settles.
    expect(host.coordinator.busy).toBe(true);
    finishSnapshot();
    await settle();
    expect(made).toEqual(['late']);
    expect(deleted).toEqual(['late']);
    expect(a.snapshots()).toEqual([]);
    expect(host.coordinator.busy).toBe(false);
    host.close();
  });

  it('a participant whose link closes aborts the attempt; the others thaw', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock });
    const p1 = join(host, 'p1', clock);
    const [m, h] = localLinkPair<ToHost, ToMember>();
    host.attach(h);
    const dying = new Participant(m, { name: 'dying', clock, callbacks: { freeze: () => new Promise<void>(() => {}) } });
    await Promise.all([p1.ready, dying.ready]);
    const attempt = host.snapshot().catch((e: StrataError) => e);
    await settle();
    expect(p1.frozen).toBe(true);
    m.close(); // the process/tab/worker is gone
    const err = (await attempt) as StrataError;
    expect(err.code).toBe('aborted');
    expect(err.message).toContain('"dying" went away');
    await settle();
    expect(p1.frozen).toBe(false);
    expect(host.participants).toEqual(['p1']);
    // The next attempt succeeds without it.
    await expect(host.snapshot()).resolves.toMatchObject({ participants: 1 });
    host.close();
  });

  it('a participant whose heartbeats stop is dropped, aborting the attempt', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock, heartbeatMs: 1000, deadAfterMs: 3000 });
    const p1 = join(host, 'p1', clock);
    // A hung member: says hello, then nothing (no heartbeat, no answer to the freeze).
    const [m, h] = localLinkPair<ToHost, ToMember>();
    host.attach(h);
    const seen: unknown[] = [];
    m.listen({ message: (x) => seen.push(x), close: () => {} });
    m.send({ t: 'hello', v: 1, name: 'hung' });
    await p1.ready;
    await clock.advance(1000);
    let err: StrataError | undefined;
    const attempt = host.snapshot().catch((e: StrataError) => (err = e));
    await clock.advance(3500);
    await attempt;
    expect(err?.code).toBe('aborted');
    expect(err?.message).toMatch(/"hung" went away .*no heartbeat/);
    expect(p1.frozen).toBe(false);
    expect(host.participants).toEqual(['p1']);
    host.close();
  });

  it('a coordinator that dies leaves nobody frozen past the limit', async () => {
    const clock = new FakeClock();
    // The "host" end is driven by hand and goes silent after the freeze.
    const [m, h] = localLinkPair<ToHost, ToMember>();
    const fromMember: ToHost[] = [];
    h.listen({ message: (x) => fromMember.push(parseToHost(x)), close: () => {} });
    const log: string[] = [];
    const p = new Participant(m, { name: 'p', clock, callbacks: recorder(log, 'p') });
    h.send({ t: 'welcome', member: 1, volumes: [{ name: 'a', size: 1 << 20, blockSize: BS }], heartbeatMs: 1000 });
    await p.ready;
    h.send({ t: 'freeze', attempt: 7, limitMs: 60_000 });
    await settle();
    expect(fromMember).toContainEqual({ t: 'frozen', attempt: 7 });
    const held = p.freezable('a').flush();
    let flushed = false;
    void held.then(() => (flushed = true), () => (flushed = true));
    await clock.advance(59_000);
    expect(p.frozen).toBe(true);
    expect(flushed).toBe(false);
    await clock.advance(1_000);
    expect(p.frozen).toBe(false);
    expect(p.autoThaws).toBe(1);
    expect(log).toContain('p thaw 7 aborted: no thaw from the coordinator within 60000 ms');
    // The held write was released (sent to the host, which here never answers).
    await settle();
    expect(fromMember.some((x) => x.t === 'flush')).toBe(true);
    // The participant also refuses to stay frozen longer than its own limit, whatever the host asks.
    const p2Links = localLinkPair<ToHost, ToMember>();
    p2Links[1].listen({ message: () => {}, close: () => {} });
    const p2 = new Participant(p2Links[0], { name: 'p2', clock, freezeLimitMs: 5_000 });
    p2Links[1].send({ t: 'welcome', member: 2, volumes: [], heartbeatMs: 0 });
    await p2.ready;
    p2Links[1].send({ t: 'freeze', attempt: 1, limitMs: 3_600_000 });
    await clock.advance(5_000);
    expect(p2.frozen).toBe(false);
  });

  it('a participant that loses its host while frozen thaws at once', async () => {
    const clock = new FakeClock();
    const [m, h] = localLinkPair<ToHost, ToMember>();
    h.listen({ message: () => {}, close: () => {} });
    const p = new Participant(m, { name: 'p', clock });
    h.send({ t: 'welcome', member: 1, volumes: [], heartbeatMs: 1000 });
    await p.ready;
    h.send({ t: 'freeze', attempt: 1, limitMs: 60_000 });
    await settle();
    expect(p.frozen).toBe(true);
    h.close();
    await settle();
    expect(p.frozen).toBe(false);
    expect(p.gate.isFrozen).toBe(false);
    expect(await p.lost).toBe('the other end closed');
  });

  it('a volume whose snapshot fails aborts the set; the snapshots already taken are deleted', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    await b.snapshot('taken'); // b refuses a second snapshot of this name
    const host = new GroupHost({ a, b }, { clock });
    const p = join(host, 'p', clock);
    await p.ready;
    const err = await host.snapshot({ name: 'taken' }).catch((e: StrataError) => e);
    expect((err as StrataError).code).toBe('exists');
    expect((err as StrataError).message).toContain('volume "b" failed');
    await settle();
    expect(a.snapshots()).toEqual([]);
    expect(b.snapshots().map((s) => s.name)).toEqual(['taken']);
    expect(p.frozen).toBe(false);
    host.close();
  });

  it('a member joining during an attempt is registered after it, and its early writes wait', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock });
    let release!: () => void;
    const p1 = join(host, 'p1', clock, { freeze: () => new Promise<void>((r) => (release = r)) });
    await p1.ready;
    const attempt = host.snapshot({ name: 'x' });
    await settle();
    const late = join(host, 'late', clock);
    await settle();
    // Not yet welcomed: its raw write is held by the host until the attempt ends.
    const [mm, hh] = localLinkPair<ToHost, ToMember>();
    host.attach(hh);
    const answers: ToMember[] = [];
    mm.listen({ message: (x) => answers.push(parseToMember(x)), close: () => {} });
    mm.send({ t: 'hello', v: 1, name: 'raw' });
    mm.send({ t: 'write', req: 1, vol: 'a', offset: 0, data: new Uint8Array(BS).fill(9) });
    await settle();
    expect(answers).toEqual([]);
    expect(host.participants).toEqual(['p1']);
    release();
    await attempt;
    await settle();
    expect(answers.map((x) => x.t)).toEqual(['welcome', 'done']);
    expect(await late.ready).toBeUndefined();
    expect(await a.openSnapshot('x').read(0, 1)).toEqual(new Uint8Array([0]));
    expect(await byte(a, 0)).toBe(9);
    host.close();
  });

  it('attempts run one at a time', async () => {
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock });
    const ps = [join(host, 'p1', clock), join(host, 'p2', clock)];
    await Promise.all(ps.map((p) => p.ready));
    const r = await Promise.all([ps[0]!.requestSnapshot('one'), ps[1]!.requestSnapshot('two'), host.snapshot({ name: 'three' })]);
    expect(r.map((s) => s.id)).toEqual(['one', 'two', 'three']);
    await settle();
    // In the order the coordinator received them (the host's own call arrived first).
    expect(ps[0]!.snapshotsSeen).toEqual(['three', 'one', 'two']);
    expect(a.snapshots().map((s) => s.name)).toEqual(ps[1]!.snapshotsSeen);
    host.close();
  });

  it('refuses malformed messages and drops their sender', async () => {
    const bad: unknown[] = [
      null, 1, 'x', [], {}, { t: 'nope' }, { t: 'frozen' }, { t: 'frozen', attempt: -1 }, { t: 'frozen', attempt: 1.5 },
      { t: 'hello', v: 1, name: 'x'.repeat(5000) }, { t: 'write', req: 1, vol: 'a', offset: 0, data: 'AAAA' },
      { t: 'read', req: 1, vol: 'a', offset: 0, length: 2 ** 40 }, { t: 'zero', req: 1, vol: 'a', offset: Number.NaN, length: 1 },
    ];
    for (const x of bad) expect(() => parseToHost(x), JSON.stringify(x)).toThrow(expect.objectContaining({ code: 'corrupt' }));
    for (const x of [{ t: 'fail', req: 1, code: 'bogus', message: '' }, { t: 'welcome', member: 1, volumes: new Array(100).fill({ name: 'a', size: 1, blockSize: 1 }), heartbeatMs: 1 }, { t: 'thaw', attempt: 1, taken: 'yes' }]) {
      expect(() => parseToMember(x)).toThrow(expect.objectContaining({ code: 'corrupt' }));
    }
    const clock = new FakeClock();
    const { a, b } = await volumes();
    const host = new GroupHost({ a, b }, { clock });
    const [m, h]: [Link<unknown>, Link<ToMember>] = localLinkPair();
    host.attach(h);
    let closed = '';
    m.listen({ message: () => {}, close: (r) => (closed = r) });
    m.send({ t: 'hello', v: 1, name: 'evil' });
    m.send({ t: 'write', req: 1, vol: 'a', offset: 0, data: 'not bytes' });
    await settle();
    expect(closed).toBe('the other end closed');
    expect(host.participants).toEqual([]);
    host.close();
  });
});
