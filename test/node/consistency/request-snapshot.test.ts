/**
 * What a member that asks for a snapshot is told, and when: `requestSnapshot` resolves only
 * after the member's own post-snapshot work for that snapshot has run (its id is in
 * `snapshotsSeen`, its `postSnapshot` callback has returned), whatever the transport delivers
 * in one go and however long the member's thaw callback takes.
 *
 * The host sends `thaw`, `post` and then the answer `done` on the member's ordered link. A
 * stream transport (the local socket) hands the member all three in one chunk, in one
 * synchronous loop; the member's thaw callback then runs while the answer is being handled.
 * That is how the ledger test across processes once saw a member miss its own snapshot.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupHost, type HostVolume } from '../../../src/consistency/host.js';
import type { Link } from '../../../src/consistency/link.js';
import { localLinkPair } from '../../../src/consistency/local.js';
import { socketLink } from '../../../src/consistency/node-socket.js';
import { Participant, type ParticipantCallbacks } from '../../../src/consistency/participant.js';
import type { ToHost, ToMember } from '../../../src/consistency/protocol.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';

const BS = 4096;
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function group(): Promise<{ host: GroupHost; a: Volume }> {
  const a = await Volume.create(new MemoryNamespace(), { size: 1 << 20, blockSize: BS });
  const host = new GroupHost({ a: a as HostVolume });
  cleanup.push(() => host.close());
  return { host, a };
}

/** Wait for one turn of the event loop (a macrotask). */
const turn = () => new Promise<void>((r) => setImmediate(r));

/**
 * A link on the host's end of a socket that writes everything the host sends in one event-loop
 * turn as one chunk (corked until the next macrotask), so the member's socket reads `thaw`,
 * `post` and `done` together, as it does whenever the reader is slower than the writer.
 */
function corkedSocketLink(socket: Socket): Link<ToMember> {
  const link = socketLink<ToMember>(socket);
  let corked = false;
  return {
    send(msg) {
      if (!corked) {
        corked = true;
        socket.cork();
        setImmediate(() => {
          corked = false;
          socket.uncork();
        });
      }
      link.send(msg);
    },
    listen: (h) => link.listen(h),
    close: () => link.close(),
  };
}

type Transport = 'same thread' | 'local socket, one chunk';

async function member(host: GroupHost, transport: Transport, name: string, callbacks: ParticipantCallbacks): Promise<Participant> {
  let link: Link<ToHost>;
  if (transport === 'same thread') {
    const [m, h] = localLinkPair<ToHost, ToMember>();
    host.attach(h);
    link = m;
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'stratadisk-cg-req-'));
    const path = join(dir, 'group.sock');
    const server: Server = createServer((socket) => host.attach(corkedSocketLink(socket)));
    await new Promise<void>((r) => server.listen(path, () => r()));
    cleanup.push(async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    });
    // a plain socket at both ends (this host is not listenGroup's, so no peer authentication)
    link = await new Promise<Link<ToHost>>((resolve, reject) => {
      const sock = createConnection(path, () => resolve(socketLink<ToHost>(sock)));
      sock.once('error', reject);
    });
  }
  const p = new Participant(link, { name, callbacks });
  cleanup.push(() => p.close());
  await p.ready;
  return p;
}

describe.each(['same thread', 'local socket, one chunk'] as const)('requestSnapshot over %s', (transport) => {
  it('resolves after its own post-snapshot callback ran (synchronous callbacks)', async () => {
    const { host } = await group();
    const truncated: string[] = [];
    const p = await member(host, transport, 'w', { freeze: () => {}, postSnapshot: (id) => void truncated.push(id) });
    for (let i = 0; i < 5; i++) {
      const snap = await p.requestSnapshot(`s${i}`);
      // Checked at once, before anything else gets a turn: a writer that stops now reports this.
      expect(p.snapshotsSeen).toContain(snap.id);
      expect(truncated).toContain(snap.id);
    }
  });

  it('resolves after its own post-snapshot callback ran, even when its thaw callback is slow', async () => {
    const { host } = await group();
    const log: string[] = [];
    const p = await member(host, transport, 'w', {
      freeze: () => {},
      // The app undoes something at thaw, taking a few turns of the event loop.
      thaw: async (c) => {
        for (let i = 0; i < 5; i++) await turn();
        log.push(`thaw ${c.attempt}`);
      },
      postSnapshot: (id) => void log.push(`post ${id}`),
    });
    const snap = await p.requestSnapshot('slow-thaw');
    log.push(`resolved ${snap.id}`);
    expect(log).toEqual(['thaw 1', 'post slow-thaw', 'resolved slow-thaw']);
    expect(p.snapshotsSeen).toEqual(['slow-thaw']);
  });

  it('waits for its own post-snapshot work only, not for later callbacks', async () => {
    const { host } = await group();
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    const p = await member(host, transport, 'w', {
      freeze: () => {},
      postSnapshot: async (id) => {
        if (id === 'host-after') await blocked; // a slow post-snapshot for the next snapshot
      },
    });
    // The host asks for the next snapshot as soon as the member's own attempt starts.
    let later: Promise<unknown> | undefined;
    host.coordinator.onEvent = (e) => {
      if (e.state === 'preparing' && !later) later = host.snapshot({ name: 'host-after' });
    };
    const snap = await p.requestSnapshot('mine');
    expect(snap.id).toBe('mine');
    expect(p.snapshotsSeen).toContain('mine');
    await later;
    release();
  });

  it.each(['thaw', 'postSnapshot'] as const)('awaited inside its own %s callback, it does not wait for itself', async (where) => {
    const log: string[] = [];
    let inner: Promise<string> | undefined;
    const { host } = await group();
    const p: Participant = await member(host, transport, 'w', {
      freeze: () => {},
      thaw: async (c) => {
        log.push(`thaw ${c.attempt}`);
        if (where === 'thaw' && c.attempt === 1) log.push(`inner answered: ${await (inner = p.requestSnapshot('inner').then((s) => s.id))}`);
      },
      postSnapshot: async (id) => {
        log.push(`post ${id}`);
        if (where === 'postSnapshot' && id === 'outer') log.push(`inner answered: ${await (inner = p.requestSnapshot('inner').then((s) => s.id))}`);
      },
    });
    await p.requestSnapshot('outer');
    expect(await inner).toBe('inner');
    while (p.snapshotsSeen.length < 2) await turn();
    expect(p.snapshotsSeen).toEqual(['outer', 'inner']);
    expect(log).toEqual(
      where === 'thaw'
        ? ['thaw 1', 'inner answered: inner', 'post outer', 'thaw 2', 'post inner']
        : ['thaw 1', 'post outer', 'inner answered: inner', 'thaw 2', 'post inner'],
    );
  });
});

describe('a member that asks before the host has registered it', () => {
  it('takes part in the snapshot it asked for and is told its id', async () => {
    const { host } = await group();
    let release!: () => void;
    const busy = await member(host, 'same thread', 'busy', { freeze: (c) => (c.attempt === 1 ? new Promise<void>((r) => (release = r)) : undefined) });
    const first = host.snapshot({ name: 'first' });
    while (!release) await turn();
    // Joins while an attempt runs: its welcome waits for the end of the attempt.
    const [m, h] = localLinkPair<ToHost, ToMember>();
    host.attach(h);
    const late = new Participant(m, { name: 'late', callbacks: { freeze: () => {} } });
    cleanup.push(() => late.close());
    const asked = late.requestSnapshot('asked-early');
    for (let i = 0; i < 5; i++) await turn();
    expect(host.participants).toEqual(['busy']);
    release();
    await first;
    const snap = await asked;
    expect(snap).toMatchObject({ id: 'asked-early', participants: 2 });
    expect(late.snapshotsSeen).toEqual(['asked-early']);
    expect(busy.snapshotsSeen).toEqual(['first', 'asked-early']);
  });
});
