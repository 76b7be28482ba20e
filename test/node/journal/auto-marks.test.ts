/**
 * Marks added by themselves (issue 16, item 2): a consistency-group snapshot marks the write log
 * of each journaled volume of the set (`group:NAME`), and a VM snapshot marks its disk's log
 * (`vm:NAME`), at the snapshot's instant: the view at the mark reads exactly what the snapshot
 * holds, even with a writer busy through the whole attempt; a mark that fails undoes the snapshot.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GroupHost } from '../../../src/consistency/host.js';
import { localLinkPair } from '../../../src/consistency/local.js';
import { connectGroup } from '../../../src/consistency/node-socket.js';
import { Participant } from '../../../src/consistency/participant.js';
import type { ToHost, ToMember } from '../../../src/consistency/protocol.js';
import { StrataError } from '../../../src/errors.js';
import { markGroupSnapshots } from '../../../src/journal/auto-marks.js';
import type { Journal } from '../../../src/journal/journal.js';
import { enableJournal, openJournaled } from '../../../src/journal/open.js';
import { restoreTo } from '../../../src/journal/restore.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { V86Disk } from '../../../src/v86/disk-adapter.js';
import { NamespaceStateStore } from '../../../src/v86/state-store.js';
import { VmSnapshots, type SnapshotVolume, type V86Machine } from '../../../src/v86/vm-snapshots.js';
import type { VolumeReader } from '../../../src/volume/volume-reader.js';
import { Volume } from '../../../src/volume/volume.js';
import { cli, ok, startCli, tempDir } from '../cli/harness.js';

const BS = 4096;
const BLOCKS = 64;
const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

async function readAll(r: VolumeReader | Volume): Promise<Uint8Array> {
  return r.read(0, BLOCKS * BS);
}

async function journaledVolume(): Promise<{ ns: MemoryNamespace; v: Volume; j: Journal }> {
  const ns = new MemoryNamespace();
  const v = await Volume.create(ns, { size: BLOCKS * BS, blockSize: BS });
  await v.write(0, fill(BS, 1));
  const j = await enableJournal(v, ns, '');
  return { ns, v, j };
}

function member(host: GroupHost, name: string, callbacks: ConstructorParameters<typeof Participant>[1]['callbacks'] = {}): Participant {
  const [m, h] = localLinkPair<ToHost, ToMember>();
  host.attach(h);
  return new Participant(m, { name, callbacks });
}

describe('automatic marks: consistency-group snapshots', () => {
  it('mark each journaled volume group:NAME at the frozen instant; the view at the mark equals the snapshot', async () => {
    const a = await journaledVolume();
    const plain = await Volume.create(new MemoryNamespace(), { size: BLOCKS * BS, blockSize: BS });
    await plain.write(0, fill(BS, 1));
    let marksAtThaw: string[] | undefined;
    const host = new GroupHost({ a: a.v, b: plain }, { onSnapshot: markGroupSnapshots({ a: a.j, b: null }), deadAfterMs: 0 });
    const writer = member(host, 'writer', { thaw: () => void (marksAtThaw = a.j.marks().map((m) => m.label)) });
    await writer.ready;
    const va = writer.volume('a');
    const vb = writer.volume('b');
    // a writer that never stops: each unit writes the same counter on both volumes
    let stop = false;
    let n = 0;
    const busy = (async () => {
      // each unit yields to the event loop, as real I/O does (a memory store and a same-thread
      // link answer in microtasks only, which would starve the coordinator's timers)
      while (!stop && n < 100_000) {
        await new Promise((r) => setImmediate(r));
        n++;
        const blk = n % BLOCKS;
        await writer.gate.run(async () => {
          await va.write(blk * BS, fill(BS, n & 0xff));
          await vb.write(blk * BS, fill(BS, n & 0xff));
        });
      }
    })();
    for (let i = 0; i < 3 && n < 20; i++) await new Promise((r) => setTimeout(r, 10));
    const s1 = await host.snapshot({ name: 'first' });
    const after1 = n;
    while (n < after1 + 10) await new Promise((r) => setTimeout(r, 1));
    await host.snapshot({ name: 'second' });
    const after2 = n;
    while (n < after2 + 10) await new Promise((r) => setTimeout(r, 1));
    stop = true;
    await busy;

    expect(s1.volumes).toEqual(['a', 'b']);
    expect(a.j.marks().map((m) => m.label)).toEqual(['group:first', 'group:second']);
    // the mark was in the log before anyone thawed
    expect(marksAtThaw).toEqual(['group:first', 'group:second']);
    for (const name of ['first', 'second']) {
      const snap = await readAll(a.v.openSnapshot(name));
      expect(await readAll(a.j.view(`mark:group:${name}`)), `view at mark group:${name}`).toEqual(snap);
      // the set is consistent: the other volume's snapshot holds the same units
      expect(await readAll(plain.openSnapshot(name))).toEqual(snap);
    }
    // the writer went on after the second snapshot: the live volume differs from it, and a
    // restore to the mark (no --force needed: it is a mark) brings the snapshot's content back
    expect(await readAll(a.v)).not.toEqual(await readAll(a.v.openSnapshot('second')));
    await restoreTo(a.j, 'mark:group:second');
    expect(await readAll(a.v)).toEqual(await readAll(a.v.openSnapshot('second')));

    writer.close();
    host.close();
    await a.v.close();
    await plain.close();
  });

  it('a mark that fails aborts the attempt: no snapshot is left on any volume, everyone thaws', async () => {
    const a = await journaledVolume();
    const b = await Volume.create(new MemoryNamespace(), { size: BLOCKS * BS, blockSize: BS });
    const host = new GroupHost(
      { a: a.v, b },
      {
        deadAfterMs: 0,
        onSnapshot: async (vol) => {
          if (vol === 'a') throw new StrataError('io', 'the log store is gone');
        },
      },
    );
    const writer = member(host, 'writer');
    await writer.ready;
    await expect(host.snapshot({ name: 'doomed' })).rejects.toMatchObject({ code: 'io', message: expect.stringContaining('its snapshot hook failed (the log store is gone)') });
    await host.coordinator.whenIdle();
    expect(a.v.snapshots().map((s) => s.name)).not.toContain('doomed');
    expect(b.snapshots().map((s) => s.name)).not.toContain('doomed');
    expect(writer.frozen).toBe(false);
    // the group goes on
    await writer.gate.run(() => writer.volume('a').write(0, fill(BS, 7)));
    writer.close();
    host.close();
    await a.v.close();
    await b.close();
  });

  describe('stratadisk serve-group', () => {
    const tmp = tempDir();
    afterAll(() => tmp.cleanup());

    it('marks the log of a journaled volume of the set at each group snapshot; plain volumes are left alone', async () => {
      const [a, b, sock] = [join(tmp.dir, 'a'), join(tmp.dir, 'b'), join(tmp.dir, 'g.sock')];
      await ok(['create', a, '--size', '1M', '--block-size', '4K']);
      await ok(['create', b, '--size', '1M', '--block-size', '4K']);
      await ok(['journal', 'enable', a]);
      const server = startCli(['serve-group', sock, a, b]);
      expect(await server.firstLine()).toBe(`Serving a, b on ${sock}`);
      const writer = new Participant(await connectGroup<ToHost>(sock), { name: 'writer' });
      await writer.ready;
      await writer.gate.run(() => writer.volume('a').write(0, fill(BS, 5)));
      const r = await cli(['group-snapshot', sock, 'nightly']);
      expect(r.code, r.stderr).toBe(0);
      await writer.gate.run(() => writer.volume('a').write(0, fill(BS, 6)));
      writer.close();
      server.stop();
      expect(await server.done).toBe(0);

      const marks = JSON.parse(await ok(['marks', a, '--json'])) as { label: string }[];
      expect(marks.map((m) => m.label)).toEqual(['group:nightly']);
      // the view at the mark equals the snapshot
      const { volume, journal } = await openJournaled(new NodeDirNamespace(a, { readOnly: true }), { readOnly: true });
      try {
        expect(await journal!.view('mark:group:nightly').read(0, 1 << 20)).toEqual(await volume.openSnapshot('nightly').read(0, 1 << 20));
        expect((await journal!.view('mark:group:nightly').read(0, 4))).toEqual(fill(4, 5));
      } finally {
        await journal!.close();
        await volume.close();
      }
      const none = await cli(['marks', b]);
      expect(none.code).toBe(2);
      expect(none.stderr).toContain('keeps no write log');
    });
  });
});

/** A stand-in for v86 with its save/restore methods (the real emulator: test/node/v86/vm.test.ts). */
function machine(): V86Machine {
  let running = true;
  return {
    is_running: () => running,
    stop: () => void (running = false),
    run: () => void (running = true),
    restart: () => {},
    save_state: async () => new Uint8Array(4096).fill(3).buffer,
    restore_state: async () => {},
  };
}

async function loadedDisk(v: Volume): Promise<V86Disk> {
  const disk = new V86Disk(v, { flushIntervalMs: 60_000 });
  await new Promise<object>((r) => {
    disk.onload = r;
    disk.load();
  });
  return disk;
}

/** A RemoteVolume's shape over a Volume: the calls VM snapshots make, plus `journal`. */
function remoteLike(v: Volume, journal: NonNullable<SnapshotVolume['journal']>): SnapshotVolume {
  return {
    size: v.size,
    blockSize: v.blockSize,
    read: (o, l) => v.read(o, l),
    write: (o, d) => v.write(o, d),
    flush: () => v.flush(),
    snapshot: (n) => v.snapshot(n),
    snapshots: () => v.snapshots(),
    revert: (n) => v.revert(n),
    deleteSnapshot: (n) => v.deleteSnapshot(n),
    journal,
  };
}

describe('automatic marks: VM snapshots', () => {
  it('mark the disk log vm:NAME with what the snapshot holds (the guest\'s buffered writes included)', async () => {
    const { ns, v, j } = await journaledVolume();
    const disk = await loadedDisk(v);
    const vm = new VmSnapshots(v, disk, new NamespaceStateStore(ns), machine(), { journal: j });
    disk.set(2 * BS, fill(BS, 9), () => {});
    const s = await vm.snapshot('booted');
    expect(s.machine).toBe(true);
    disk.set(2 * BS, fill(BS, 10), () => {});
    await vm.snapshot('later', { machine: false });
    expect(j.marks().map((m) => m.label)).toEqual(['vm:booted', 'vm:later']);
    expect(await readAll(j.view('mark:vm:booted'))).toEqual(await readAll(v.openSnapshot('booted')));
    expect((await j.view('mark:vm:booted').read(2 * BS, 4))).toEqual(fill(4, 9));
    expect((await j.view('mark:vm:later').read(2 * BS, 4))).toEqual(fill(4, 10));
    await v.close();
  });

  it('use the volume\'s own log when it has one (RemoteVolume.journal), and none when its status is null', async () => {
    const { ns, v, j } = await journaledVolume();
    const disk = await loadedDisk(v);
    // a RemoteVolume's shape: the Volume API plus `journal` with status() and mark()
    const withLog = remoteLike(v, { status: async () => j.status(), mark: (l: string) => j.mark(l) });
    await new VmSnapshots(withLog, disk, new NamespaceStateStore(ns), undefined).snapshot('remote', { machine: false });
    expect(j.marks().map((m) => m.label)).toEqual(['vm:remote']);
    let marked = 0;
    const noLog = remoteLike(v, { status: async () => null, mark: async () => void marked++ });
    await new VmSnapshots(noLog, disk, new NamespaceStateStore(ns), undefined).snapshot('plain', { machine: false });
    expect(marked).toBe(0);
    expect(v.snapshots().map((s) => s.name)).toContain('plain');
    await v.close();
  });

  it('a mark that fails undoes the snapshot and its machine state', async () => {
    const { ns, v } = await journaledVolume();
    const disk = await loadedDisk(v);
    const states = new NamespaceStateStore(ns);
    const vm = new VmSnapshots(v, disk, states, machine(), { journal: { mark: async () => Promise.reject(new StrataError('io', 'log store gone')) } });
    await expect(vm.snapshot('x')).rejects.toMatchObject({ code: 'io' });
    expect(v.snapshots().map((s) => s.name)).not.toContain('x');
    expect(await states.get('x')).toBeUndefined();
    await v.close();
  });
});
