/**
 * The checked-in stores of every on-store format (test/fixtures/formats/<format>/v<N>/, written
 * by test/fixtures/formats/generate.mjs; see the README there) open with this stratadisk and hold
 * what was written: a shadow catalog with its diff areas, a copy-on-read volume partly
 * provisioned, a job journal with a stream job stopped mid-way, an import cut short (staging
 * mark), a saved v86 machine state and a journaled volume (write log with marks, a policy and a
 * fold). Each test works on a copy.
 * (The plain volumes, volume/v1 and volume/v2, are test/node/volume/format-fixtures.test.ts.)
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FORMATS, readsVersion } from '../../../src/format/magic.js';
import { JobJournal } from '../../../src/jobs/job-journal.js';
import { openJournaled } from '../../../src/journal/open.js';
import { resumeJobs } from '../../../src/jobs/resume.js';
import { CatalogStore } from '../../../src/shadow/catalog.js';
import { ShadowVolume } from '../../../src/shadow/index.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { decodeState } from '../../../src/v86/state-file.js';
import { NamespaceStateStore } from '../../../src/v86/state-store.js';
import { Volume } from '../../../src/volume/volume.js';
import { loadKernels } from '../../../src/wasm/index.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/formats/', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'stratadisk-format-fixtures-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;
const KiB = 1024;
const BS = 4 * KiB;

function copyOf(fixture: string): string {
  const dir = join(work, `${seq++}-${fixture.replace(/\//g, '-')}`);
  cpSync(join(FIXTURES, fixture), dir, { recursive: true });
  return dir;
}

/** Record version (bytes 6-7) and magic (0-3) of a record at the start of a file. */
function recordHead(file: string): { magic: number; version: number } {
  const b = readFileSync(file);
  return { magic: b.readUInt32LE(0), version: b.readUInt16LE(6) };
}

const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);

// ---- copy-on-read image (generate.mjs imageBytes/imageFetch) ----
const IMAGE_URL = 'https://images.example/disk-v1.raw';
const IMAGE_SIZE = 20 * BS - 300;
function imageBytes(): Uint8Array {
  const b = new Uint8Array(IMAGE_SIZE);
  for (let i = 0; i < IMAGE_SIZE; i++) b[i] = (i * 131 + (i >> 12)) & 255;
  b.fill(0, 8 * BS, 10 * BS);
  return b;
}
/** Serves the image with range requests as the fixture's server did (same ETag); counts requests. */
function imageServer(image: Uint8Array): { fetch: typeof fetch; requests: number } {
  const s = {
    requests: 0,
    fetch: (async (url: string | URL | Request, init?: RequestInit) => {
      s.requests++;
      expect(String(url)).toBe(IMAGE_URL);
      const range = /^bytes=(\d+)-(\d+)$/.exec((init!.headers as Record<string, string>).Range!)!;
      const first = Number(range[1]);
      const last = Math.min(Number(range[2]), image.length - 1);
      const body = image.slice(first, last + 1);
      return new Response(body, { status: 206, headers: { 'Content-Range': `bytes ${first}-${last}/${image.length}`, 'Content-Length': String(body.length), ETag: '"disk-v1"' } });
    }) as typeof fetch,
  };
  return s;
}
/** A fetch that must not be called (the blocks read are local). */
const offline = (() => {
  throw new Error('no request expected: these blocks are local');
}) as unknown as typeof fetch;

describe('format fixtures', () => {
  it('each fixture directory is named after the version it holds, which this stratadisk reads', async () => {
    const want: Record<string, { file: string; format: keyof typeof FORMATS }> = {
      volume: { file: 'manifest.1', format: 'manifest' },
      'copy-on-read': { file: 'manifest.1', format: 'manifest' },
      shadow: { file: 'shadows/shadows.1', format: 'shadowCatalog' },
      'job-journal': { file: 'jobs.1', format: 'jobJournal' },
      staging: { file: 'staging.mark', format: 'stagingMark' },
      'v86-state': { file: 'v86-state.boot', format: 'v86State' },
      journal: { file: 'journal.000002.log', format: 'writeLog' },
      'replication-oos': { file: 'replication.s1.oos.0', format: 'outOfSync' },
      resync: { file: 'resync-sums.0', format: 'resyncSums' },
    };
    const found = readdirSync(FIXTURES, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
    expect(found).toEqual(Object.keys(want).sort());
    for (const [name, { file, format }] of Object.entries(want)) {
      const versions = readdirSync(join(FIXTURES, name));
      expect(versions.length, name).toBeGreaterThan(0);
      // the newest fixture of each format is the version this stratadisk writes
      expect(versions, name).toContain(`v${FORMATS[format].writes}`);
      for (const v of versions) {
        const path = join(FIXTURES, name, v, file);
        // the v86 state file is not a record: an 8-byte tag, then its version (u32 LE)
        const head = format === 'v86State' ? { magic: readFileSync(path).subarray(0, 8).toString('latin1'), version: readFileSync(path).readUInt32LE(8) } : recordHead(path);
        expect(head.magic, `${name}/${v}`).toBe(FORMATS[format].magic);
        expect(`v${head.version}`, `${name}/${v}`).toBe(v);
        expect(readsVersion(format, head.version)).toBe(true);
      }
    }
  });

  describe('shadow/v1: a raw volume, its shadow catalog and three diff areas', () => {
    const size = 16 * BS + 700;
    const monday = new Uint8Array(size);
    for (let i = 0; i * BS < size; i++) monday.fill(0x40 + i, i * BS, Math.min(size, (i + 1) * BS));
    const tuesday = monday.slice();
    tuesday.fill(0xa1, 2 * BS, 3 * BS);
    tuesday.fill(0xa2, 5 * BS + 10, 5 * BS + 110);
    const live = tuesday.slice();
    live.fill(0xb1, 2 * BS, 3 * BS);
    live.fill(0xb2, 9 * BS, 10 * BS);
    live.fill(0xb3, 16 * BS, size);
    live.fill(0xc1, 12 * BS, 13 * BS);

    it('the catalog lists the copies, their policies and the deleted area', async () => {
      await loadKernels();
      const dir = copyOf('shadow/v1');
      const cs = await CatalogStore.open(new NodeDirNamespace(join(dir, 'shadows'), { readOnly: true }));
      expect(cs.catalog).toMatchObject({ format: 'stratadisk-shadows', version: 1, blockSize: BS, volumeSize: size, nextId: 4 });
      expect(cs.catalog.areas.map((a) => [a.id, a.name, a.state, a.onFull, a.maxBytes])).toEqual([
        ['S000001', 'monday', 'live', 'drop', 64 * KiB],
        ['S000002', 'tuesday', 'live', 'fail', 64 * KiB],
        ['S000003', 'gone', 'deleted', 'drop', 64 * KiB],
      ]);
    });

    it('every copy reads what the volume held when it was taken, and new writes still preserve into them', async () => {
      const dir = copyOf('shadow/v1');
      const raw = new Uint8Array(readFileSync(join(dir, 'volume.raw')));
      expect(raw).toEqual(live);
      const volume = new MemoryStore(raw);
      const backing = volume.backing;
      const sv = await ShadowVolume.open(volume, new NodeDirNamespace(join(dir, 'shadows')), { sharedMemory: false });
      expect(sv.list().map((c) => c.name)).toEqual(['monday', 'tuesday']);
      expect(await sv.openShadow('monday').read(0, size)).toEqual(monday);
      expect(await sv.openShadow('tuesday').read(0, size)).toEqual(tuesday);
      // a first overwrite of block 12 (preserved for `gone` only) and of block 3 (never preserved)
      await sv.write(12 * BS, fill(BS, 0xd1));
      await sv.write(3 * BS, fill(BS, 0xd2));
      expect(await sv.openShadow('monday').read(0, size)).toEqual(monday);
      expect(await sv.openShadow('tuesday').read(0, size)).toEqual(tuesday);
      await sv.close();
      const again = await ShadowVolume.open(new MemoryStore(backing), new NodeDirNamespace(join(dir, 'shadows')), { sharedMemory: false });
      expect(await again.openShadow('monday').read(0, size)).toEqual(monday);
      expect(await again.openShadow('tuesday').read(0, size)).toEqual(tuesday);
      await again.close();
    });
  });

  describe('copy-on-read/v2: a volume over a remote image, partly provisioned', () => {
    const image = imageBytes();
    const first = image.slice();
    const liveView = image.slice();
    liveView.fill(0x5a, 6 * BS + 50, 6 * BS + 150);
    liveView.fill(0, 11 * BS, 12 * BS);

    it('pins the image, keeps the fetched blocks local and reads the snapshot and the live view', async () => {
      const dir = copyOf('copy-on-read/v2');
      const local = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true, remote: { fetch: offline, retries: 0 } });
      expect(local.manifest.remote).toEqual({ url: IMAGE_URL, size: IMAGE_SIZE, cache: 'L000001', etag: '"disk-v1"' });
      expect(local.snapshots().map((s) => s.name)).toEqual(['first']);
      const p = local.info().remote!;
      expect(p).toMatchObject({ imageBytes: IMAGE_SIZE, cleanBlocks: 6, modifiedBlocks: 2, cachedBlocks: 7 });
      // blocks 0-3, 15-16 (cached) and 6, 11 (changed) are read without the image
      expect(await local.read(0, 4 * BS)).toEqual(liveView.subarray(0, 4 * BS));
      expect(await local.read(15 * BS, 2 * BS)).toEqual(liveView.subarray(15 * BS, 17 * BS));
      expect(await local.read(6 * BS, BS)).toEqual(liveView.subarray(6 * BS, 7 * BS));
      expect(await local.read(11 * BS, BS)).toEqual(liveView.subarray(11 * BS, 12 * BS));
      await local.close();

      const srv = imageServer(image);
      const v = await Volume.open(new NodeDirNamespace(dir), { remote: { fetch: srv.fetch, retries: 0, cacheFlushMs: 1e9 } });
      expect(await v.read(0, v.size)).toEqual(liveView);
      expect(await v.openSnapshot('first').read(0, v.size)).toEqual(first);
      expect(srv.requests).toBeGreaterThan(0);
      expect((await v.check()).ok).toBe(true);
      await v.close();
    });
  });

  describe('staging/v1: an import cut short by a crash', () => {
    const committed = new Uint8Array(64 * KiB);
    committed.fill(0x61, 0, 8 * KiB);
    const base = committed.slice();
    committed.fill(0x62, 12 * KiB, 16 * KiB);

    it('reads as before the import; a writable open removes the layers of the import and its mark', async () => {
      const dir = copyOf('staging/v1');
      expect(readdirSync(dir).sort()).toEqual(['L000001.data', 'L000001.map', 'L000002.data', 'L000002.map', 'L000003.data', 'L000003.map', 'L000004.data', 'L000004.map', 'manifest.0', 'manifest.1', 'staging.mark']);
      const ro = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
      expect(ro.snapshots().map((s) => s.name)).toEqual(['base']);
      expect(await ro.read(0, ro.size)).toEqual(committed);
      await ro.close();
      const v = await Volume.open(new NodeDirNamespace(dir));
      expect(await v.read(0, v.size)).toEqual(committed);
      expect(await v.openSnapshot('base').read(0, v.size)).toEqual(base);
      expect((await v.check()).ok).toBe(true);
      await v.close();
      expect(readdirSync(dir).filter((f) => !f.startsWith('.')).sort()).toEqual(['L000001.data', 'L000001.map', 'L000002.data', 'L000002.map', 'manifest.0', 'manifest.1']);
    });
  });

  describe('v86-state/v1: a saved machine state', () => {
    it('decodes to the state that was saved', async () => {
      const dir = copyOf('v86-state/v1');
      const want = new Uint8Array(64 * KiB + 100);
      for (let i = 0; i * 4096 < 64 * KiB; i++) want.fill((i * 17) & 255, i * 4096, (i + 1) * 4096);
      want.fill(0, 3 * 4096, 6 * 4096);
      want.fill(0xee, 64 * KiB);
      const states = new NamespaceStateStore(new NodeDirNamespace(dir, { readOnly: true }));
      expect(await states.list()).toEqual([{ name: 'boot', bytes: 53291 }]);
      expect(new Uint8Array(await decodeState((await states.get('boot'))!, 'boot'))).toEqual(want);
    });
  });

  describe('job-journal/v1: a stream job stopped mid-way', () => {
    it('is listed as interrupted with its parameters, and resuming it finishes the volume', async () => {
      const dir = copyOf('job-journal/v1');
      const journal = await JobJournal.open(new NodeDirNamespace(dir, { readOnly: true }));
      expect(journal.records()).toEqual([
        { id: 'stream-fixture', kind: 'stream', params: { url: IMAGE_URL, imageBytes: IMAGE_SIZE, rateLimit: null }, started: '2026-12-01T12:00:00.000Z', pid: 2 ** 30, host: null },
      ]);
      const image = imageBytes();
      const srv = imageServer(image);
      const v = await Volume.open(new NodeDirNamespace(dir), { remote: { fetch: srv.fetch, retries: 0, cacheFlushMs: 1e9 } });
      // the job's progress: 3 batches of 2 blocks were fetched and made durable
      expect(v.info().remote).toMatchObject({ cleanBlocks: 6, cachedBlocks: 6, localBytes: 6 * BS });
      const dropped = await resumeJobs(v);
      expect(dropped).toEqual([]);
      expect(v.info().remote!.remoteBytes).toBe(0);
      expect(await v.read(0, v.size)).toEqual(image);
      await v.close();
      expect((await JobJournal.open(new NodeDirNamespace(dir, { readOnly: true }))).records()).toEqual([]);
      expect(existsSync(join(dir, 'jobs.0'))).toBe(true);
    });
  });

  describe('journal/v1: a journaled volume with marks, a policy and a fold', () => {
    const SIZE = 1024 * KiB;
    // generate.mjs journal(): the base (before the log), then each point
    const base = new Uint8Array(SIZE);
    base.fill(0x11, 0, 16 * KiB);
    base.fill(0x12, 40 * KiB + 7, 40 * KiB + 107);
    const one = base.slice();
    one.fill(0x21, 4 * KiB + 100, 4 * KiB + 300);
    one.fill(0x22, 64 * KiB, 72 * KiB);
    one.fill(0, 8 * KiB, 12 * KiB);
    one.fill(0, 40 * KiB + 20, 40 * KiB + 70);
    const two = one.slice();
    two.fill(0x31, 14 * KiB, 20 * KiB);
    two.fill(0x32, 64 * KiB + 500, 64 * KiB + 3500);
    const afterPolicy = two.slice();
    afterPolicy.fill(0x41, 512 * KiB, 520 * KiB);
    afterPolicy.fill(0, 64 * KiB, 80 * KiB);
    const latest = afterPolicy.slice();
    latest.fill(0x51, SIZE - 100, SIZE);
    latest.fill(0x52, 0, 4 * KiB);
    const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
    const FILES = [
      'L000001.data', 'L000001.map', 'L000002.data', 'L000002.map',
      'journal.000002.log', 'journal.000003.log', 'journal.000004.log', 'journal.000005.log', 'journal.fold-000000000000004.log',
      'manifest.0', 'manifest.1',
    ];
    const MARKS = [
      { label: 'one', point: 4, seq: 5, time: Date.parse('2026-12-01T12:00:00.000Z') },
      { label: 'two', point: 9, seq: 10, time: Date.parse('2026-12-01T12:00:00.000Z') },
    ];
    const listing = (dir: string) => readdirSync(dir).filter((f) => !f.startsWith('.')).sort();

    it('holds segments 2-5 and the fold store at seq 4, every one a write log record of the version this stratadisk reads', () => {
      const dir = copyOf('journal/v1');
      expect(listing(dir)).toEqual(FILES);
      for (const f of FILES.filter((n) => n.startsWith('journal.'))) {
        const head = recordHead(join(dir, f));
        expect(head.magic, f).toBe(FORMATS.writeLog.magic);
        expect(readsVersion('writeLog', head.version), f).toBe(true);
      }
      // the fold store's HEAD names the point it holds the blocks at
      expect(readFileSync(join(dir, 'journal.fold-000000000000004.log')).toString('latin1')).toContain('"folded":4');
    });

    it('read-only: its marks, policy and every kept point read as written, and nothing on the store changes', async () => {
      const dir = copyOf('journal/v1');
      const before = new Map(FILES.map((f) => [f, readFileSync(join(dir, f))]));
      const { volume, journal } = await openJournaled(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
      const j = journal!;
      expect(j.readOnly).toBe(true);
      expect(volume.manifest.version).toBe(3);
      expect(volume.requirements()).toEqual([{ name: 'journal', where: '', keeps: ['journal.base'], settings: { maxBytes: 8 * 1024 * KiB, onFull: 'refuse' } }]);
      expect(volume.snapshots().map((s) => s.name)).toEqual(['journal.base']);
      expect(j.marks()).toEqual(MARKS);
      expect(j.status()).toMatchObject({ lastFlush: 18, marks: 2, policy: { maxBytes: 8 * 1024 * KiB, onFull: 'refuse' }, full: false, failed: null, recovered: null });
      // the log was folded to mark one: `base` names it now; points before it are gone
      expect(j.resolve('base')).toBe(4);
      expect(j.resolve('mark:one')).toBe(4);
      expect(() => j.view({ seq: 3 })).toThrow(expect.objectContaining({ code: 'out-of-range' }));
      expect(same(await j.view('base').read(0, SIZE), one)).toBe(true);
      expect(same(await j.view('mark:one').read(0, SIZE), one)).toBe(true);
      expect(same(await j.view('mark:two').read(0, SIZE), two)).toBe(true);
      expect(same(await j.view({ seq: 14 }).read(0, SIZE), afterPolicy)).toBe(true);
      expect(same(await j.view('latest').read(0, SIZE), latest)).toBe(true);
      expect(same(await volume.read(0, SIZE), latest)).toBe(true);
      // the log's base snapshot is the volume before the log began
      expect(same(await volume.openSnapshot('journal.base').read(0, SIZE), base)).toBe(true);
      await expect(j.mark('three')).rejects.toMatchObject({ code: 'read-only' });
      // a read-only journal is not attached to the volume: closing the volume leaves its log open
      await j.close();
      await volume.close();
      expect(listing(dir)).toEqual(FILES);
      for (const [f, b] of before) expect(readFileSync(join(dir, f)).equals(b), f).toBe(true);
    });

    it('writable: opens without recovery, keeps taking writes and marks through the log, and they are there after reopening', async () => {
      const dir = copyOf('journal/v1');
      const { volume, journal } = await openJournaled(new NodeDirNamespace(dir));
      const j = journal!;
      expect(j.readOnly).toBe(false);
      expect(j.recovered).toBeNull();
      expect(j.policy).toEqual({ maxBytes: 8 * 1024 * KiB, onFull: 'refuse' });
      expect(j.marks()).toEqual(MARKS);
      expect(same(await j.view('mark:two').read(0, SIZE), two)).toBe(true);
      await volume.write(100 * KiB + 1, fill(5000, 0x61));
      await volume.writeZeroes(0, 2 * KiB);
      const three = await j.mark('three');
      expect(three.point).toBeGreaterThan(18);
      const now = latest.slice();
      now.fill(0x61, 100 * KiB + 1, 100 * KiB + 5001);
      now.fill(0, 0, 2 * KiB);
      expect(same(await j.view('mark:three').read(0, SIZE), now)).toBe(true);
      expect(same(await j.view('mark:two').read(0, SIZE), two)).toBe(true);
      expect((await volume.check()).ok).toBe(true);
      await volume.close();

      const again = await openJournaled(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
      expect(again.journal!.marks().map((m) => m.label)).toEqual(['one', 'two', 'three']);
      expect(same(await again.volume.read(0, SIZE), now)).toBe(true);
      expect(same(await again.journal!.view('latest').read(0, SIZE), now)).toBe(true);
      expect(same(await again.journal!.view('mark:one').read(0, SIZE), one)).toBe(true);
      await again.journal!.close();
      await again.volume.close();
    });
  });
});
