/**
 * ObjectNamespace (src/transfer/object-namespace.ts): the shared Store and namespace conformance
 * suites over a memory object store (tiny parts, so every case crosses part boundaries, and the
 * default 4 MiB parts) and over the real S3 test server; then what is particular to it: parts
 * and records in the object store, holes, stale parts after a shrink, a crash inside a flush,
 * the buffer bound, damaged records, and the writer lease.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultObjectStore } from '../../../src/transfer/fault-objects.js';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { LOCK, NAMES, ObjectNamespace, PARTS } from '../../../src/transfer/object-namespace.js';
import { openObjectStore } from '../../../src/transfer/open-objects.js';
import type { ObjectStore } from '../../../src/transfer/object-store.js';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { equalBytes, errorCode, namespaceConformance, pattern, prng, storeConformance } from './conformance.js';

function suites(label: string, objects: () => Promise<ObjectStore>, partSize?: number): void {
  const opts = partSize === undefined ? {} : { partSize };
  storeConformance(`ObjectNamespace store (${label})`, async () => {
    const o = await objects();
    const ns = new ObjectNamespace(o, opts);
    return {
      open: () => ns.open('disk', { create: true }),
      reopen: () => new ObjectNamespace(o, opts).open('disk'),
      openReadOnly: () => new ObjectNamespace(o, { ...opts, readOnly: true }).open('disk'),
      cleanup: async () => {},
      largeOffsets: true,
    };
  });
  namespaceConformance(`ObjectNamespace (${label})`, async () => {
    const o = await objects();
    return {
      namespace: new ObjectNamespace(o, opts),
      reopen: async () => new ObjectNamespace(o, opts),
      readOnly: async () => new ObjectNamespace(o, { ...opts, readOnly: true }),
      cleanup: async () => {},
    };
  });
}

suites('memory, 512-byte parts', async () => new MemoryObjectStore(), 512);
suites('memory, default parts', async () => new MemoryObjectStore());

describe('over the S3 test server', () => {
  let s3: TestS3Server;
  let n = 0;
  beforeAll(async () => {
    s3 = await startS3Server();
  }, 60_000);
  afterAll(async () => {
    await s3?.stop();
  });
  suites('S3, 4 KiB parts', () => openObjectStore(`s3://${s3.bucket}/conf-${n++}`, { env: s3.env }), 4096);
});

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
const keys = (o: MemoryObjectStore) => [...o.objects.keys()].sort();
const part = (name: string, i: number) => `${PARTS}${name}/${String(i).padStart(16, '0')}`;

async function writeFlushClose(ns: ObjectNamespace, name: string, at: number, data: Uint8Array): Promise<void> {
  const s = await ns.open(name, { create: true });
  await s.write(at, data);
  await s.flush();
  await s.close();
}

describe('ObjectNamespace specifics', () => {
  it('keeps a store as a size record and part objects; absent parts are holes that read as zeros', async () => {
    const o = new MemoryObjectStore();
    const ns = new ObjectNamespace(o, { partSize: 4096 });
    await writeFlushClose(ns, 'disk', 5 * 4096 + 10, pattern(5000, 1));
    expect(keys(o)).toEqual([`${NAMES}disk`, part('disk', 5), part('disk', 6)]);
    expect(JSON.parse(new TextDecoder().decode(o.objects.get(`${NAMES}disk`)!.data))).toEqual({ format: 'stratadisk-object-file/1', size: 5 * 4096 + 5010, partSize: 4096 });
    // the last part object ends where the store ends
    expect(o.objects.get(part('disk', 6))!.data.length).toBe(5 * 4096 + 5010 - 6 * 4096);
    const s = await new ObjectNamespace(o, { readOnly: true }).open('disk');
    const want = new Uint8Array(s.size);
    want.set(pattern(5000, 1), 5 * 4096 + 10);
    equalBytes(await s.read(0, s.size), want, 'holes and data');
    await s.close();
  });

  it('a shrink deletes the parts past the end at flush, and a regrow over them reads zeros after a reopen', async () => {
    const o = new MemoryObjectStore();
    await writeFlushClose(new ObjectNamespace(o, { partSize: 4096 }), 'disk', 0, pattern(40_000, 2));
    const s = await new ObjectNamespace(o, { partSize: 4096 }).open('disk');
    await s.truncate(5000);
    await s.flush();
    await s.close();
    expect(keys(o)).toEqual([`${NAMES}disk`, part('disk', 0), part('disk', 1)]);
    const t = await new ObjectNamespace(o, { partSize: 4096 }).open('disk');
    await t.truncate(40_000);
    await t.flush();
    await t.close();
    const r = await new ObjectNamespace(o).open('disk', { readOnly: true });
    const want = new Uint8Array(40_000);
    want.set(pattern(40_000, 2).subarray(0, 5000));
    equalBytes(await r.read(0, 40_000), want, 'after shrink, flush, regrow, reopen');
  });

  it('parts past the end that a crash left are never read: a grow over them reads zeros, and the next flush deletes them', async () => {
    const o = new MemoryObjectStore();
    await writeFlushClose(new ObjectNamespace(o, { partSize: 4096 }), 'disk', 0, pattern(4096, 3));
    // as if a crash came after the parts of a grow landed but before its size record
    await o.put(part('disk', 3), pattern(4096, 4));
    const s = await new ObjectNamespace(o, { partSize: 4096 }).open('disk');
    expect(s.size).toBe(4096);
    await s.write(5 * 4096, new Uint8Array([7]));
    equalBytes(await s.read(3 * 4096, 4096), new Uint8Array(4096), 'the leftover part');
    await s.flush();
    await s.close();
    expect(keys(o)).toEqual([`${NAMES}disk`, part('disk', 0), part('disk', 5)]);
  });

  it('a crash inside a flush leaves each part old or new and the old or new size; a reopen reads a mix of the two, never other bytes', async () => {
    for (let k = 0; k < 7; k++) {
      for (const landed of [false, true]) {
        const o = new MemoryObjectStore();
        const old = pattern(12_000, 5);
        await writeFlushClose(new ObjectNamespace(o, { partSize: 4096 }), 'disk', 0, old);
        const f = new FaultObjectStore(o, { crashAtPut: k, landed });
        const s = await new ObjectNamespace(f, { partSize: 4096, maxInFlight: 1 }).open('disk');
        const neu = pattern(20_000, 6);
        await s.write(0, neu);
        const err = await s.flush().then(() => null, (e: unknown) => e);
        const again = await new ObjectNamespace(o).open('disk', { readOnly: true });
        expect([12_000, 20_000], `crash at put ${k}`).toContain(again.size);
        const got = await again.read(0, again.size);
        for (let p = 0; p * 4096 < again.size; p++) {
          const end = Math.min(again.size, (p + 1) * 4096);
          const slice = got.subarray(p * 4096, end);
          const isNew = slice.every((b, j) => b === neu[p * 4096 + j]);
          const oldPart = new Uint8Array(end - p * 4096);
          oldPart.set(old.subarray(p * 4096, Math.min(old.length, end)));
          const isOld = slice.every((b, j) => b === oldPart[j]);
          expect(isNew || isOld, `crash at put ${k} (${landed ? 'landed' : 'lost'}), part ${p}`).toBe(true);
        }
        if (k === 6) expect(err).toBeNull(); // 5 parts and the record: put 6 never comes
        else expect(err).not.toBeNull();
        await again.close();
      }
    }
  });

  it('a writer that passes the buffer bound waits for uploads: parts go up before any flush', async () => {
    const o = new FaultObjectStore(new MemoryObjectStore());
    const ns = new ObjectNamespace(o, { partSize: 4096, maxBufferBytes: 4 * 4096 });
    const s = await ns.open('disk', { create: true });
    const before = o.puts; // the record of the new store
    // 32 partial writes to 32 parts, none of them full: only the bound sends them up
    for (let i = 31; i >= 0; i--) await s.write(i * 4096 + 100, pattern(1000, i));
    expect(o.puts - before).toBeGreaterThanOrEqual(32 - 4 - 1);
    await s.flush();
    await s.close();
    const r = await new ObjectNamespace(o.inner).open('disk', { readOnly: true });
    for (let i = 0; i < 32; i++) equalBytes(await r.read(i * 4096 + 100, 1000), pattern(1000, i), `part ${i}`);
  });

  it('refuses a damaged or hostile size record with corrupt, and never reads past a part', async () => {
    const o = new MemoryObjectStore();
    const ns = new ObjectNamespace(o);
    for (const [name, body] of [
      ['a', new TextEncoder().encode('not json')],
      ['b', enc({ format: 'stratadisk-object-file/1', size: -1, partSize: 4096 })],
      ['c', enc({ format: 'stratadisk-object-file/1', size: 10, partSize: 3000 })],
      ['d', enc({ format: 'stratadisk-object-file/1', size: 10, partSize: 1 << 30 })],
      ['e', enc({ format: 'other', size: 10, partSize: 4096 })],
      ['f', new Uint8Array(5000).fill(32)],
    ] as const) {
      await o.put(`${NAMES}${name}`, body);
      expect(await errorCode(ns.open(name)), name).toBe('corrupt');
    }
    // a part object longer than its part: the bytes past the part are not the next part's
    await o.put(`${NAMES}g`, enc({ format: 'stratadisk-object-file/1', size: 1024, partSize: 512 }));
    await o.put(part('g', 0), new Uint8Array(1024).fill(9));
    const s = await ns.open('g', { readOnly: true });
    const got = await s.read(0, 1024);
    expect(got.subarray(0, 512).every((b) => b === 9)).toBe(true);
    expect(got.subarray(512).every((b) => b === 0)).toBe(true);
  });

  it('a delete that crashed between its record and its parts leaves nothing a new store of that name shows', async () => {
    const o = new MemoryObjectStore();
    await writeFlushClose(new ObjectNamespace(o, { partSize: 512 }), 'disk', 0, pattern(2000, 7));
    const f = new FaultObjectStore(o, { crashAtDelete: 1 });
    await errorCode(new ObjectNamespace(f).delete('disk'));
    expect(keys(o).some((k) => k.startsWith(PARTS))).toBe(true);
    const ns = new ObjectNamespace(o, { partSize: 512 });
    expect(await ns.list()).toEqual([]);
    const s = await ns.open('disk', { create: true });
    expect(s.size).toBe(0);
    await s.write(1900, new Uint8Array([1]));
    equalBytes(await s.read(0, 1900), new Uint8Array(1900), 'no old bytes');
    await s.close();
    expect(keys(o).filter((k) => k.startsWith(PARTS))).toEqual([part('disk', 3)]);
  });

  it('reads of a read-only namespace never put or delete anything', async () => {
    const o = new MemoryObjectStore();
    await writeFlushClose(new ObjectNamespace(o, { partSize: 512 }), 'disk', 0, pattern(3000, 8));
    const f = new FaultObjectStore(o);
    const ns = new ObjectNamespace(f, { readOnly: true });
    const s = await ns.open('disk', { create: true });
    await s.read(100, 2000);
    await s.flush();
    await s.close();
    await ns.sync();
    expect(await errorCode(ns.lock())).toBe('read-only');
    expect([f.puts, f.deletes]).toEqual([0, 0]);
  });

  it('a sequential reader is read ahead: each part is fetched once, and a write after a read-ahead is seen', async () => {
    const o = new MemoryObjectStore();
    const data = pattern(64 * 512, 9);
    await writeFlushClose(new ObjectNamespace(o, { partSize: 512 }), 'disk', 0, data);
    let gets = 0;
    const counting: ObjectStore = Object.assign(Object.create(o) as MemoryObjectStore, {
      get: (key: string, range?: { offset: number; length: number }) => {
        gets++;
        return o.get(key, range);
      },
    });
    const ns = new ObjectNamespace(counting);
    const s = await ns.open('disk');
    for (let at = 0; at < data.length; at += 700) {
      const n = Math.min(700, data.length - at);
      equalBytes(await s.read(at, n), data.subarray(at, at + n), `read at ${at}`);
    }
    expect(gets - 1).toBe(64); // the record, then each part once
    // a write lands in a part that was read ahead: the next read sees the write
    await s.read(0, 700);
    await s.write(1000, new Uint8Array([1, 2, 3]));
    equalBytes(await s.read(700, 700), (() => {
      const w = data.slice(700, 1400);
      w.set([1, 2, 3], 300);
      return w;
    })(), 'after the write');
    await s.close();
  });

  it('the writer lease: a second writer gets locked; after release, or once the lease expired, it is taken', async () => {
    const o = new MemoryObjectStore();
    const a = new ObjectNamespace(o, { lockTtlMs: 60_000 });
    const held = await a.lock();
    expect(keys(o)).toEqual([LOCK]);
    const err = await new ObjectNamespace(o).lock().then(() => null, (e: unknown) => e as Error);
    expect(err).toMatchObject({ code: 'locked' });
    expect(err!.message).toMatch(/expires in \d+ s/);
    await held.release();
    expect(keys(o)).toEqual([]);
    const b = await new ObjectNamespace(o).lock();
    // b crashes (never releases); a later process sees the lease expired and takes it over
    void b;
    const c = await new ObjectNamespace(o, { now: () => Date.now() + 3_600_000 }).lock();
    await c.release();
    expect(keys(o)).toEqual([]);
    // a damaged lease counts as live for one lease time from its last change
    await o.put(LOCK, new TextEncoder().encode('{half'));
    expect(await errorCode(new ObjectNamespace(o).lock())).toBe('locked');
    await (await new ObjectNamespace(o, { now: () => Date.now() + 3_600_000 }).lock()).release();
  });

  it('a writer whose lease lapsed (renewals failed) writes nothing more: `locked`, the store unchanged', async () => {
    const o = new MemoryObjectStore();
    let skew = 0;
    const ns = new ObjectNamespace(o, { lockTtlMs: 60_000, partSize: 4096, now: () => Date.now() + skew });
    const lease = await ns.lock();
    const s = await ns.open('f', { create: true });
    await s.write(0, pattern(8192, 1));
    await s.flush();
    const before = keys(o);
    // no renewal landed for longer than the lease lives: another process may hold it now
    skew = 55_000;
    await s.write(8192, pattern(4096, 2));
    const err = await s.flush().then(() => null, (e: unknown) => e as Error);
    expect(err).toMatchObject({ code: 'locked' });
    expect(err!.message).toMatch(/lease lapsed[^]*nothing more is written/);
    expect(keys(o)).toEqual(before);
    expect(await errorCode(ns.delete('f'))).toBe('locked');
    await lease.release();
  });
});
