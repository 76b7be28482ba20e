/**
 * The three users of the A/B record-slot store (src/format/record-slots.ts) — the volume
 * manifest, the shadow catalog and the job journal — keep the bytes they always wrote (magic,
 * kind, version, slot per generation; the manifest and catalog overwrite in place, the journal
 * cuts its slot), recover the older generation after a torn commit, and each keeps its own answer
 * when both slots are bad (manifest and catalog: `corrupt`; journal: empty). A slot written by a
 * newer stratadisk that is newer than every valid one is refused (`unsupported`) by all three:
 * opening the older generation would roll the value back. (This file imports only modules that
 * predate the slot store, so it runs against older builds too.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ManifestStore, type Manifest } from '../../../src/format/manifest.js';
import { MapLog } from '../../../src/format/map-log.js';
import { encodeRecord } from '../../../src/format/record.js';
import { JobJournal, type JobRecord } from '../../../src/jobs/job-journal.js';
import { CatalogStore, type Catalog } from '../../../src/shadow/catalog.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { loadKernels } from '../../../src/wasm/index.js';

beforeAll(async () => {
  await loadKernels();
});

// The on-store constants, spelled out: a change to any of them strands existing stores.
const MANIFEST = { magic: 0x4d564453, kind: 2, version: 2 }; // "SDVM"
const CATALOG = { magic: 0x43534453, kind: 1, version: 1 }; // "SDSC"
const JOURNAL = { magic: 0x4a4a4453, kind: 3, version: 1 }; // "SDJJ"

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const record = (h: { magic: number; kind: number; version: number }, seq: number, payload: Uint8Array) => encodeRecord({ ...h, seq, length: payload.length }, payload);
const bytesOf = (ns: MemoryNamespace, name: string) => ns.files.get(name)!.contents();
const put = (ns: MemoryNamespace, name: string, bytes: Uint8Array) => {
  const b = ns.files.get(name)!;
  b.ensureCapacity(bytes.length, name);
  b.buf.set(bytes);
  b.length = bytes.length;
};

function manifest(snapshots = 0): Manifest {
  const layers = [{ id: 'L000001', parent: null, sealed: false, contentId: null, created: '2026-01-01T00:00:00.000Z' }];
  const m: Manifest = { format: 'stratadisk-volume', version: 1, uuid: 'u', size: 1 << 20, blockSize: 4096, layers, active: 'L000001', snapshots: [], nextLayer: 2 };
  for (let i = 0; i < snapshots; i++) {
    m.layers.unshift({ id: `L00010${i}`, parent: null, sealed: true, contentId: null, created: '2026-01-01T00:00:00.000Z' });
    m.snapshots.push({ name: `snap-${i}`, layer: `L00010${i}`, created: '2026-01-01T00:00:00.000Z' });
  }
  m.nextLayer = 200;
  return m;
}

function catalog(areas = 0): Catalog {
  const c: Catalog = { format: 'stratadisk-shadows', version: 1, blockSize: 4096, volumeSize: 1 << 20, nextId: 1 + areas, areas: [] };
  for (let i = 1; i <= areas; i++) c.areas.push({ id: `S00000${i}`, name: `copy-${i}`, created: '2026-01-01T00:00:00.000Z', state: 'live', onFull: 'drop', maxBytes: null });
  return c;
}

const job = (id: string): JobRecord => ({ id, kind: 'stream', params: { url: 'https://x.example/a' }, started: '2026-01-01T00:00:00.000Z', pid: null, host: null });

describe('bytes on the store', () => {
  it('manifest: generation g in manifest.(g % 2), overwritten in place (a shorter record leaves the old tail)', async () => {
    const ns = new MemoryNamespace();
    const ms = await ManifestStore.create(ns, manifest(2));
    expect(bytesOf(ns, 'manifest.0')).toEqual(new Uint8Array(0));
    expect(bytesOf(ns, 'manifest.1')).toEqual(record(MANIFEST, 1, json(manifest(2))));
    await ms.commit(manifest(1));
    await ms.commit(manifest(0));
    const long = record(MANIFEST, 1, json(manifest(2)));
    const short = record(MANIFEST, 3, json(manifest(0)));
    expect(bytesOf(ns, 'manifest.0')).toEqual(record(MANIFEST, 2, json(manifest(1))));
    expect(bytesOf(ns, 'manifest.1')).toEqual(new Uint8Array([...short, ...long.subarray(short.length)]));
    expect((await ManifestStore.open(ns)).generation).toBe(3);
  });

  it('catalog: generation g in shadows.(g % 2), overwritten in place', async () => {
    const ns = new MemoryNamespace();
    const cs = await CatalogStore.create(ns, catalog(2));
    expect(bytesOf(ns, 'shadows.0')).toEqual(new Uint8Array(0));
    expect(bytesOf(ns, 'shadows.1')).toEqual(record(CATALOG, 1, json(catalog(2))));
    await cs.commit(catalog(1));
    await cs.commit(catalog(0));
    const long = record(CATALOG, 1, json(catalog(2)));
    const short = record(CATALOG, 3, json(catalog(0)));
    expect(bytesOf(ns, 'shadows.0')).toEqual(record(CATALOG, 2, json(catalog(1))));
    expect(bytesOf(ns, 'shadows.1')).toEqual(new Uint8Array([...short, ...long.subarray(short.length)]));
    expect((await CatalogStore.open(ns)).catalog).toEqual(catalog(0));
  });

  it('journal: slots made on first use, a shorter record cuts its slot', async () => {
    const ns = new MemoryNamespace();
    const j = await JobJournal.open(ns);
    expect(await ns.list()).toEqual([]);
    await j.put(job('a'));
    expect(await ns.list()).toEqual(['jobs.1']);
    await j.put(job('b'));
    await j.put(job('c'));
    await j.remove('a');
    await j.remove('b'); // generation 5 into jobs.1, which held [a, b, c]
    expect(bytesOf(ns, 'jobs.0')).toEqual(record(JOURNAL, 4, json([job('b'), job('c')])));
    expect(bytesOf(ns, 'jobs.1')).toEqual(record(JOURNAL, 5, json([job('c')])));
  });
});

describe('a torn commit leaves the previous generation', () => {
  const tear = (b: Uint8Array) => b.subarray(0, b.length - 5);

  it('manifest', async () => {
    const ns = new MemoryNamespace();
    const ms = await ManifestStore.create(ns, manifest(0));
    await ms.commit(manifest(1));
    put(ns, 'manifest.1', tear(record(MANIFEST, 3, json(manifest(2)))));
    const got = await ManifestStore.open(ns);
    expect(got.generation).toBe(2);
    expect(got.slots.map((s) => s.state)).toEqual(['valid', 'invalid']);
  });

  it('catalog', async () => {
    const ns = new MemoryNamespace();
    const cs = await CatalogStore.create(ns, catalog(0));
    await cs.commit(catalog(1));
    put(ns, 'shadows.1', tear(record(CATALOG, 3, json(catalog(2)))));
    const got = await CatalogStore.open(ns);
    expect([got.generation, got.catalog]).toEqual([2, catalog(1)]);
  });

  it('journal', async () => {
    const ns = new MemoryNamespace();
    const j = await JobJournal.open(ns);
    await j.put(job('a'));
    await j.put(job('b'));
    put(ns, 'jobs.1', tear(record(JOURNAL, 3, json([job('a'), job('b'), job('c')]))));
    expect((await JobJournal.open(new MemoryNamespace({ files: ns.files, readOnly: true }))).records().map((r) => r.id)).toEqual(['a', 'b']);
  });
});

describe('both slots bad: each keeps its answer', () => {
  it('manifest: corrupt, with the salvage advice', async () => {
    const ns = new MemoryNamespace();
    const ms = await ManifestStore.create(ns, manifest(0));
    await ms.commit(manifest(1));
    for (const s of ['manifest.0', 'manifest.1']) put(ns, s, new Uint8Array(64).fill(7));
    await expect(ManifestStore.open(ns)).rejects.toMatchObject({ code: 'corrupt', message: expect.stringMatching(/neither manifest slot holds a valid generation.*salvage/) });
  });

  it('catalog: corrupt, with the shadow advice', async () => {
    const ns = new MemoryNamespace();
    const cs = await CatalogStore.create(ns, catalog(0));
    await cs.commit(catalog(1));
    for (const s of ['shadows.0', 'shadows.1']) put(ns, s, new Uint8Array(64).fill(7));
    await expect(CatalogStore.open(ns)).rejects.toMatchObject({ code: 'corrupt', message: expect.stringMatching(/shadow catalog is damaged.*restore the shadow directory/) });
  });

  it('journal: empty (it only lists interrupted jobs), and the next commit starts over', async () => {
    const ns = new MemoryNamespace();
    const j = await JobJournal.open(ns);
    await j.put(job('a'));
    await j.put(job('b'));
    for (const s of ['jobs.0', 'jobs.1']) put(ns, s, new Uint8Array(64).fill(7));
    const again = await JobJournal.open(new MemoryNamespace({ files: ns.files }));
    expect(again.records()).toEqual([]);
    await again.put(job('c'));
    expect(bytesOf(ns, 'jobs.1')).toEqual(record(JOURNAL, 1, json([job('c')])));
  });

  it('nothing written: manifest and catalog not-found, journal empty', async () => {
    const ns = new MemoryNamespace();
    for (const s of ['manifest.0', 'manifest.1', 'shadows.0', 'shadows.1']) await (await ns.open(s, { create: true })).close();
    await expect(ManifestStore.open(ns)).rejects.toMatchObject({ code: 'not-found' });
    await expect(CatalogStore.open(ns)).rejects.toMatchObject({ code: 'not-found' });
    expect((await JobJournal.open(new MemoryNamespace())).records()).toEqual([]);
  });
});

describe('a slot written by a newer stratadisk', () => {
  const newer = { version: 9 };
  const upgrade = /has format version 9; this stratadisk reads version.*Upgrade stratadisk: it was written by a release newer than \d+\.\d+\.\d+/;

  it('manifest: newer than the valid slot is refused; older than it is ignored', async () => {
    const ns = new MemoryNamespace();
    const ms = await ManifestStore.create(ns, manifest(0));
    await ms.commit(manifest(1));
    put(ns, 'manifest.1', record({ ...MANIFEST, ...newer }, 3, json(manifest(2))));
    await expect(ManifestStore.open(ns)).rejects.toMatchObject({ code: 'unsupported', message: expect.stringMatching(upgrade) });
    put(ns, 'manifest.1', record({ ...MANIFEST, ...newer }, 1, json(manifest(2))));
    expect((await ManifestStore.open(ns)).generation).toBe(2);
  });

  it('catalog: newer than the valid slot is refused (was: the older generation opened); older is ignored', async () => {
    const ns = new MemoryNamespace();
    const cs = await CatalogStore.create(ns, catalog(0));
    await cs.commit(catalog(1));
    put(ns, 'shadows.1', record({ ...CATALOG, ...newer }, 3, json({ ...catalog(2), version: 9 })));
    await expect(CatalogStore.open(ns)).rejects.toMatchObject({ code: 'unsupported', message: expect.stringMatching(upgrade) });
    put(ns, 'shadows.1', record({ ...CATALOG, ...newer }, 1, json({ ...catalog(2), version: 9 })));
    expect((await CatalogStore.open(ns)).generation).toBe(2);
  });

  it('journal: newer than the valid slot is refused (was: read as if absent); older is ignored', async () => {
    const ns = new MemoryNamespace();
    const j = await JobJournal.open(ns);
    await j.put(job('a'));
    await j.put(job('b'));
    put(ns, 'jobs.1', record({ ...JOURNAL, ...newer }, 3, json([job('a'), job('b'), job('c')])));
    await expect(JobJournal.open(new MemoryNamespace({ files: ns.files, readOnly: true }))).rejects.toMatchObject({ code: 'unsupported', message: expect.stringMatching(upgrade) });
    put(ns, 'jobs.1', record({ ...JOURNAL, ...newer }, 1, json([])));
    expect((await JobJournal.open(new MemoryNamespace({ files: ns.files, readOnly: true }))).records().map((r) => r.id)).toEqual(['a', 'b']);
  });

  it('map log: a header record of a newer version is unsupported (was: corrupt)', async () => {
    const ns = new MemoryNamespace();
    const store = await ns.open('L000001.map', { create: true });
    const header = json({ layer: 'L000001', blockSize: 4096 });
    await store.write(0, encodeRecord({ magic: 0x4c4d4453, kind: 0, version: 9, seq: 0, length: header.length }, header));
    await expect(MapLog.open(store, { layer: 'L000001', blockSize: 4096 }, () => {}, 'Layer L000001')).rejects.toMatchObject({ code: 'unsupported', message: expect.stringMatching(upgrade) });
  });
});
