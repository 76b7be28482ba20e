/** serve-nbd --dirty-since: the changes since a point as qemu:dirty-bitmap:NAME, read by nbdinfo and qemu-img. */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { diffPoints } from '../../../src/journal/diff.js';
import { enableJournal, openJournaled } from '../../../src/journal/open.js';
import { dirtyDescriptors } from '../../../src/interop/nbd/dirty-bitmap.js';
import { serveNbd } from '../../../src/interop/nbd/index.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { cli, pattern, startCli } from '../cli/harness.js';
import { have, runOk, tempDir } from '../interop/nbd-helpers.js';

const KiB = 1024;
const BS = 64 * KiB;
const SIZE = 32 * 1024 * KiB;

describe('dirty bitmap descriptors', () => {
  const bm = { name: 'x', changed: [{ offset: 100, length: 50 }, { offset: 300, length: 100 }] };
  it('alternate clean and dirty runs over the asked range, cut to it', () => {
    expect(dirtyDescriptors(bm, 0, 1000, 64)).toEqual([[100, 0], [50, 1], [150, 0], [100, 1], [600, 0]]);
    expect(dirtyDescriptors(bm, 120, 200, 64)).toEqual([[30, 1], [150, 0], [20, 1]]);
    expect(dirtyDescriptors(bm, 400, 10, 64)).toEqual([[10, 0]]);
    expect(dirtyDescriptors(bm, 0, 1000, 2)).toEqual([[100, 0], [50, 1]]);
    expect(dirtyDescriptors({ name: 'e', changed: [] }, 5, 7, 64)).toEqual([[7, 0]]);
  });
});

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir('stratadisk-jdiff-nbd-')));
afterEach(() => cleanup());

async function build(vol: string): Promise<void> {
  const ns = new NodeDirNamespace(vol, { create: true });
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  await v.write(0, pattern(8 * BS, 1));
  const j = await enableJournal(v, ns, '');
  await j.mark('a');
  await v.write(2 * BS + 5, pattern(100, 2));
  await v.writeZeroes(4 * BS, 2 * BS);
  await v.write(100 * BS, pattern(3 * BS, 3));
  await v.snapshot('s');
  await j.mark('b');
  await v.write(200 * BS, pattern(BS, 4));
  await v.close();
}

async function expected(vol: string, since: { log: string } | { snapshot: string }, served: 'live' | { log: string } | { snapshot: string }) {
  const { volume, journal } = await openJournaled(new NodeDirNamespace(vol, { readOnly: true }), { readOnly: true });
  const d = diffPoints(volume, journal, since, served);
  await journal?.close();
  await volume.close();
  return d;
}

interface MapEntry {
  offset: number;
  length: number;
  type: number;
  description: string;
}

/** The dirty ranges nbdinfo --map reports, merged. */
function dirtyOf(map: MapEntry[]): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (const m of map) {
    if ((m.type & 1) === 0) continue;
    const last = out[out.length - 1];
    if (last && last.offset + last.length === m.offset) last.length += m.length;
    else out.push({ offset: m.offset, length: m.length });
  }
  return out;
}

describe.skipIf(!have('nbdinfo'))('serve-nbd --dirty-since, read by nbdinfo', () => {
  it('a log point served with the changes since an older mark; a snapshot; the live volume read-only', async () => {
    const vol = join(dir, 'v');
    await build(vol);
    const cases = [
      { source: { dir: vol, point: 'mark:b' }, since: { log: 'mark:a' }, served: { log: 'mark:b' } },
      { source: { dir: vol, snapshot: 's' }, since: { log: 'mark:a' }, served: { snapshot: 's' } },
      { source: { dir: vol }, since: { snapshot: 's' }, served: 'live' as const, readOnly: true },
    ];
    for (const c of cases) {
      const server = await serveNbd(c.source, { socket: join(dir, 'nbd.sock'), ...(c.readOnly ? { readOnly: true } : {}), dirtySince: { point: c.since, name: 'inc' } });
      try {
        const want = await expected(vol, c.since, c.served);
        expect(want.length).toBeGreaterThan(0);
        const map = JSON.parse(await runOk('nbdinfo', ['--map=qemu:dirty-bitmap:inc', '--json', server.uri])) as MapEntry[];
        expect(map.reduce((n, m) => n + m.length, 0)).toBe(SIZE);
        expect(dirtyOf(map), JSON.stringify(c)).toEqual(want);
        expect(map.filter((m) => m.type & 1).every((m) => m.description === 'dirty')).toBe(true);
        // base:allocation is still served alongside
        const base = JSON.parse(await runOk('nbdinfo', ['--map', '--json', server.uri])) as MapEntry[];
        expect(base.reduce((n, m) => n + m.length, 0)).toBe(SIZE);
        const info = JSON.parse(await runOk('nbdinfo', ['--json', server.uri])) as { exports: { contexts: string[] }[] };
        expect(info.exports[0]!.contexts).toEqual(['base:allocation', 'qemu:dirty-bitmap:inc']);
      } finally {
        await server.close();
      }
    }
  });

  it.skipIf(!have('qemu-img'))('qemu-img map through x-dirty-bitmap (QEMU as the client) sees the same dirty ranges', async () => {
    const vol = join(dir, 'v');
    await build(vol);
    const sock = join(dir, 'q.sock');
    const server = await serveNbd({ dir: vol, point: 'mark:b' }, { socket: sock, dirtySince: { point: { log: 'mark:a' }, name: 'inc' } });
    try {
      const map = JSON.parse(await runOk('qemu-img', ['map', '--output=json', '--image-opts', `driver=nbd,server.type=unix,server.path=${sock},x-dirty-bitmap=qemu:dirty-bitmap:inc`])) as { start: number; length: number; data: boolean }[];
      // QEMU reads the bitmap's dirty bit in place of base:allocation's hole bit: dirty shows as data: false
      const dirty = map.filter((m) => !m.data).map((m) => ({ offset: m.start, length: m.length }));
      expect(dirty).toEqual(await expected(vol, { log: 'mark:a' }, { log: 'mark:b' }));
    } finally {
      await server.close();
    }
  });

  it('refuses a writable live volume, --processes, and --bitmap alone, with codes', async () => {
    const vol = join(dir, 'v');
    await build(vol);
    await expect(serveNbd({ dir: vol }, { socket: join(dir, 'x.sock'), dirtySince: { point: { snapshot: 's' }, name: 'x' } })).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(serveNbd({ dir: vol }, { socket: join(dir, 'x.sock'), readOnly: true, processes: 2, dirtySince: { point: { snapshot: 's' }, name: 'x' } })).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(serveNbd({ dir: vol, snapshot: 's' }, { socket: join(dir, 'x.sock'), dirtySince: { point: { log: 'mark:nope' }, name: 'x' } })).rejects.toMatchObject({ code: 'not-found' });
    const alone = await cli(['serve-nbd', vol, '--read-only', '--bitmap', 'x']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--dirty-since');
    // the volume is not left locked: a writer opens it
    const { volume, journal } = await openJournaled(new NodeDirNamespace(vol));
    await journal?.close();
    await volume.close();
  });

  it('from the CLI: serve-nbd DIR@mark:b --dirty-since mark:a --bitmap inc', async () => {
    const vol = join(dir, 'v');
    await build(vol);
    const s = startCli(['serve-nbd', `${vol}@mark:b`, '--dirty-since', 'mark:a', '--bitmap', 'inc', '--socket', join(dir, 'c.sock')]);
    const uri = await s.firstLine();
    try {
      const map = JSON.parse(await runOk('nbdinfo', ['--map=qemu:dirty-bitmap:inc', '--json', uri])) as MapEntry[];
      expect(dirtyOf(map)).toEqual(await expected(vol, { log: 'mark:a' }, { log: 'mark:b' }));
    } finally {
      s.stop();
      expect(await s.done).toBe(0);
    }
  });
});
