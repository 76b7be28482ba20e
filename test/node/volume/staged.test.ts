/**
 * Volume.staged: a change (writes and snapshots) that becomes visible in one manifest commit.
 * A throw, an abort or a crash anywhere before that commit leaves the volume exactly as before.
 */
import { describe, expect, it } from 'vitest';
import { startImageServer } from '../../../src/bench/image-server.js';
import { isStrataError } from '../../../src/errors.js';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import type { StoreNamespace } from '../../../src/store/store.js';
import { Volume, type StagedChange } from '../../../src/volume/volume.js';
import { copyNamespace } from './workload.js';
import { sweepCrashPoints } from './crash-sweep.js';

const BS = 4096;
const SIZE = 16 * BS;

const fill = (n: number, b: number) => new Uint8Array(n).fill(b);

/** Everything a user can see of a volume: snapshot names and contents, and the live view. */
interface Seen {
  snaps: string;
  contents: Map<string, string>;
  live: string;
}

const digest = (b: Uint8Array) => Buffer.from(b).toString('base64');

async function seen(v: Volume): Promise<Seen> {
  const contents = new Map<string, string>();
  for (const s of v.snapshots()) contents.set(s.name, digest(await v.openSnapshot(s.name).read(0, SIZE)));
  return { snaps: v.snapshots().map((s) => s.name).join(','), contents, live: digest(await v.read(0, SIZE)) };
}

/** A volume with a snapshot `keep` and live changes on top of it. */
async function prepared(ns: StoreNamespace): Promise<Volume> {
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  await v.write(0, fill(4 * BS, 0xaa));
  await v.snapshot('keep');
  await v.write(2 * BS, fill(4 * BS, 0xbb));
  await v.write(15 * BS + 100, fill(10, 0xbc));
  await v.flush();
  return v;
}

/** An import-like change: a new base image with a snapshot, then the live image. */
async function importLike(v: Volume, stage: StagedChange): Promise<void> {
  // Block by block with flushes between, so that a crash sweep has many points to crash at.
  for (let b = 0; b < 8; b++) {
    await v.write(b * BS, fill(BS, 0xc1));
    if (b % 2 === 1) await v.flush();
  }
  await v.writeZeroes(8 * BS, 8 * BS);
  await v.flush();
  await stage.snapshot('imported');
  await v.write(4 * BS, fill(2 * BS, 0xd1));
  await v.flush();
}

describe('Volume.staged', () => {
  it('last-snapshot: publishes the new live view and snapshots at once; the live layer is replaced', async () => {
    const ns = new MemoryNamespace();
    const v = await prepared(ns);
    const filesBefore = (await ns.list()).sort();
    await v.staged('last-snapshot', (stage) => importLike(v, stage));
    const want = new Uint8Array(SIZE);
    want.fill(0xc1, 0, 8 * BS);
    want.fill(0xd1, 4 * BS, 6 * BS);
    expect(v.snapshots().map((s) => s.name)).toEqual(['keep', 'imported']);
    expect(digest(await v.read(0, SIZE))).toBe(digest(want));
    expect(digest(await v.openSnapshot('keep').read(0, SIZE))).toBe(digest(padded(fill(4 * BS, 0xaa))));
    await v.close();
    const again = await Volume.open(ns);
    expect(digest(await again.read(0, SIZE))).toBe(digest(want));
    expect((await again.check()).ok).toBe(true);
    // The replaced live layer's files are gone.
    const live = filesBefore.filter((f) => f.startsWith('L000002'));
    expect(live.length).toBeGreaterThan(0);
    for (const f of live) expect(await ns.exists(f)).toBe(false);
    await again.close();
  });

  it('live: the change stacks on the live view, which shows through where it writes nothing', async () => {
    const ns = new MemoryNamespace();
    const v = await prepared(ns);
    const before = await v.read(0, SIZE);
    await v.staged('live', async () => {
      await v.write(BS + 10, fill(BS, 0xe1));
    });
    before.fill(0xe1, BS + 10, 2 * BS + 10);
    expect(digest(await v.read(0, SIZE))).toBe(digest(before));
    expect(v.snapshots().map((s) => s.name)).toEqual(['keep']);
    expect(v.info().layers).toHaveLength(2); // the sealed live layer was merged away
    await v.close();
    const again = await Volume.open(ns);
    expect(digest(await again.read(0, SIZE))).toBe(digest(before));
    expect((await again.check()).ok).toBe(true);
    await again.close();
  });

  for (const from of ['live', 'last-snapshot'] as const) {
    it(`${from}: a throw in build leaves everything as before, files included`, async () => {
      const ns = new MemoryNamespace();
      const v = await prepared(ns);
      const was = await seen(v);
      const files = (await ns.list()).sort();
      const gen = v.info().generation;
      const err = await v
        .staged(from, async (stage) => {
          await importLike(v, stage);
          throw new Error('boom');
        })
        .catch((e: unknown) => e);
      expect(String(err)).toMatch(/boom/);
      expect(await seen(v)).toEqual(was);
      expect((await ns.list()).sort()).toEqual(files);
      expect(v.info().generation).toBe(gen);
      // Still usable as before.
      await v.snapshot('after');
      await v.close();
      const again = await Volume.open(ns);
      expect(again.snapshots().map((s) => s.name)).toEqual(['keep', 'after']);
      expect((await again.check()).ok).toBe(true);
      await again.close();
    });
  }

  it('an abort seen at the end drops the change (code aborted)', async () => {
    const ns = new MemoryNamespace();
    const v = await prepared(ns);
    const was = await seen(v);
    const ac = new AbortController();
    const err = await v
      .staged(
        'last-snapshot',
        async (stage) => {
          await importLike(v, stage);
          ac.abort();
        },
        { signal: ac.signal },
      )
      .catch((e: unknown) => e);
    expect(isStrataError(err, 'aborted')).toBe(true);
    expect(await seen(v)).toEqual(was);
    await v.close();
  });

  it('refuses snapshot, revert, delete-snapshot and a second change while one is built', async () => {
    const v = await prepared(new MemoryNamespace());
    await v.staged('live', async () => {
      for (const op of [() => v.snapshot('x'), () => v.revert('keep'), () => v.deleteSnapshot('keep'), () => v.staged('live', async () => {})]) {
        const e = await op().catch((x: unknown) => x);
        expect(isStrataError(e, 'locked'), String(e)).toBe(true);
      }
    });
    await v.snapshot('x');
    await v.close();
  });
});

describe('Volume.staged on a volume built on a remote image', () => {
  it('is refused (unsupported) and changes nothing', async () => {
    const server = await startImageServer(fill(8 * BS, 0x5a));
    try {
      const v = await Volume.createFromImage(new MemoryNamespace(), server.url, { blockSize: BS });
      const e = await v.staged('live', async () => {}).catch((x: unknown) => x);
      expect(isStrataError(e, 'unsupported'), String(e)).toBe(true);
      await v.snapshot('still-works');
      await v.close();
    } finally {
      await server.close();
    }
  });
});

describe('Volume.staged under crashes', () => {
  const MODES: [CrashMode, TearMode][] = [
    ['drop-unflushed', 'sectors'],
    ['keep-unflushed', 'prefix'],
    ['random', 'sectors'],
    ['keep-unflushed', 'full'],
  ];
  for (const from of ['live', 'last-snapshot'] as const) {
    it(`${from}: a crash at any write of the change leaves the state before or after it, never between`, async () => {
      // A clean run: the states before and after, and which writes belong to the change.
      const probe = new FaultController({});
      const clean = new FaultNamespace(new MemoryNamespace(), probe);
      const v0 = await prepared(clean);
      const before = await seen(v0);
      const first = probe.writes;
      await v0.staged(from, (stage) => importLike(v0, stage));
      await v0.close();
      const total = probe.writes;
      const v1 = await Volume.open(clean);
      const after = await seen(v1);
      await v1.close();
      expect(after).not.toEqual(before);

      let sawBefore = 0;
      let sawAfter = 0;
      let checked = 0;
      for (const m of MODES) {
        checked += await sweepCrashPoints(total - first, 0, 1, 1, () => m, async (k, mode, tear) => {
          const inner = new MemoryNamespace();
          const ctl = new FaultController({});
          const ns = new FaultNamespace(inner, ctl);
          const v = await prepared(ns);
          ctl.plan = { crashAt: ctl.writes + k, tear, seed: k + 1, sectorSize: 512 };
          const out = await v
            .staged(from, (stage) => importLike(v, stage))
            .then(() => v.close())
            .then(
              () => 'finished',
              () => 'crashed',
            );
          if (out === 'finished') return undefined;
          await ctl.crash(mode);
          for (const writable of [false, true]) {
            const copy = writable ? inner : copyNamespace(inner);
            const r = await Volume.open(copy, { readOnly: !writable });
            try {
              const got = await seen(r);
              const same = (want: Seen) => got.snaps === want.snaps && got.live === want.live && JSON.stringify([...got.contents]) === JSON.stringify([...want.contents]);
              const isBefore = same(before);
              const isAfter = same(after);
              if (!isBefore && !isAfter) return `state after the crash is neither before nor after the change (snapshots ${got.snaps})`;
              if (writable) {
                if (isBefore) sawBefore++;
                else sawAfter++;
                if (!(await r.check()).ok) return 'check failed';
                // No file is left that the manifest does not name.
                const named = new Set(r.manifest.layers.map((l) => l.id));
                const stray = (await copy.list()).filter((f) => /^L\d+\./.test(f) && !named.has(f.slice(0, f.indexOf('.'))));
                if (stray.length > 0) return `files left behind: ${stray.join(', ')}`;
              }
            } finally {
              await r.close();
            }
          }
          return null;
        });
      }
      expect(checked).toBeGreaterThanOrEqual(60);
      expect(sawBefore).toBeGreaterThan(0);
      expect(sawAfter).toBeGreaterThan(0);
    });
  }
});

function padded(head: Uint8Array): Uint8Array {
  const b = new Uint8Array(SIZE);
  b.set(head);
  return b;
}
