/**
 * Browser storage benchmarks, run inside a dedicated worker (OPFS sync access handles exist only
 * there): a volume on OPFS against raw `FileSystemSyncAccessHandle` calls on a plain OPFS file,
 * and a volume on IndexedDB against plain idb-keyval chunk puts/gets — same sizes, same pattern,
 * same run.
 */
import { createStore, getMany, setMany, clear } from 'idb-keyval';
import type { StoreNamespace } from '../store/store.js';
import { Volume } from '../volume/volume.js';
import { result, type BenchResult } from './result.js';

const KiB = 1024;
const MiB = 1024 * KiB;

interface SyncHandle {
  read(buffer: Uint8Array, options?: { at?: number }): number;
  write(buffer: Uint8Array, options?: { at?: number }): number;
  flush(): void;
  truncate(size: number): void;
  close(): void;
}

function pattern(n: number, seed: number): Uint8Array {
  const d = new Uint8Array(n);
  const w = new Uint32Array(d.buffer);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x >>> 0;
  }
  return d;
}

/** Seeded distinct-ish offsets (block-aligned) for random I/O. */
function offsets(count: number, span: number, unit: number, seed: number): number[] {
  const out: number[] = [];
  let x = seed >>> 0 || 1;
  const slots = Math.floor(span / unit);
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.push(((x >>> 0) % slots) * unit);
  }
  return out;
}

async function time(fn: () => Promise<void> | void): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Best (shortest) of `rounds` alternating timings of ours and peer. */
async function pairTimes(rounds: number, ours: () => Promise<void>, peer: () => Promise<void>): Promise<[number, number]> {
  let a = Infinity;
  let b = Infinity;
  for (let r = 0; r < rounds; r++) {
    a = Math.min(a, await time(ours));
    b = Math.min(b, await time(peer));
  }
  return [a, b];
}

export interface BrowserStorageBackends {
  /** OpfsNamespace.open(path, { create: true }) */
  opfs?: (path: string) => Promise<StoreNamespace>;
  /** IdbNamespace.open(dbName) */
  idb?: (dbName: string) => Promise<StoreNamespace>;
  /** removes an OPFS directory path (recursively) */
  removeOpfs?: (path: string) => Promise<void>;
  /** deletes an IndexedDB database */
  removeIdb?: (dbName: string) => Promise<void>;
}

export async function benchBrowserStorage(backends: BrowserStorageBackends, options: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = options.quick === true;
  const out: BenchResult[] = [];
  const SEQ = quick ? 8 * MiB : 64 * MiB;
  const CHUNK = 1 * MiB;
  const RAND = quick ? 500 : 5000;
  const rounds = quick ? 1 : 3;
  const seqData = pattern(SEQ, 7);
  const small = pattern(4 * KiB, 9);
  const tag = `${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;

  if (backends.opfs) {
    const root = await navigator.storage.getDirectory();
    // --- raw OPFS peer: one plain file, one sync access handle ---
    const rawName = `bench-raw-${tag}`;
    const fh = await root.getFileHandle(rawName, { create: true });
    const raw = (await (fh as unknown as { createSyncAccessHandle(): Promise<SyncHandle> }).createSyncAccessHandle());
    const volPath = `bench/opfs-${tag}`;
    const ns = await backends.opfs(volPath);
    const vol = await Volume.create(ns, { size: SEQ, blockSize: 64 * KiB });
    const buf = new Uint8Array(CHUNK);
    try {
      const [ow, pw] = await pairTimes(rounds,
        async () => {
          for (let o = 0; o < SEQ; o += CHUNK) await vol.write(o, seqData.subarray(o, o + CHUNK));
          await vol.flush();
        },
        async () => {
          for (let o = 0; o < SEQ; o += CHUNK) raw.write(seqData.subarray(o, o + CHUNK), { at: o });
          raw.flush();
        });
      out.push(result('OPFS: sequential 1 MiB writes + flush', SEQ / MiB / ow, SEQ / MiB / pw, 'MiB/s', 'raw OPFS SyncAccessHandle', 0.8,
        `${SEQ / MiB} MiB volume (64 KiB blocks) vs a plain OPFS file; best of ${rounds}; ours hashes every block (XXH3-128) and writes its map log`));
      const [orr, prr] = await pairTimes(rounds,
        async () => { for (let o = 0; o < SEQ; o += CHUNK) await vol.readInto(o, buf); },
        async () => { for (let o = 0; o < SEQ; o += CHUNK) raw.read(buf, { at: o }); });
      out.push(result('OPFS: sequential 1 MiB reads', SEQ / MiB / orr, SEQ / MiB / prr, 'MiB/s', 'raw OPFS SyncAccessHandle', 0.8, `${SEQ / MiB} MiB, warm; best of ${rounds}`));
    } finally {
      await vol.close();
    }
    // --- random 4 KiB on a 4 KiB-block volume (so both sides write 4 KiB per request) ---
    const rPath = `bench/opfs-rand-${tag}`;
    const rns = await backends.opfs(rPath);
    const rvol = await Volume.create(rns, { size: SEQ, blockSize: 4 * KiB });
    await rvol.write(0, seqData);
    await rvol.flush();
    const offs = offsets(RAND, SEQ, 4 * KiB, 3);
    const b4 = new Uint8Array(4 * KiB);
    try {
      const [ow, pw] = await pairTimes(rounds,
        async () => { for (const o of offs) await rvol.write(o, small); await rvol.flush(); },
        async () => { for (const o of offs) raw.write(small, { at: o }); raw.flush(); });
      out.push(result('OPFS: random 4 KiB writes (+1 flush)', RAND / ow, RAND / pw, 'ops/s', 'raw OPFS SyncAccessHandle', undefined, `${RAND} writes over ${SEQ / MiB} MiB; volume with 4 KiB blocks`));
      const [or, pr] = await pairTimes(rounds,
        async () => { for (const o of offs) await rvol.readInto(o, b4); },
        async () => { for (const o of offs) raw.read(b4, { at: o }); });
      out.push(result('OPFS: random 4 KiB reads', RAND / or, RAND / pr, 'ops/s', 'raw OPFS SyncAccessHandle', undefined, `${RAND} reads, warm`));
    } finally {
      await rvol.close();
      raw.close();
      await root.removeEntry(rawName).catch(() => {});
      await backends.removeOpfs?.(volPath).catch(() => {});
      await backends.removeOpfs?.(rPath).catch(() => {});
    }
  }

  if (backends.idb) {
    const ISEQ = quick ? 4 * MiB : 32 * MiB;
    const CH = 64 * KiB;
    const peerStore = createStore(`bench-idb-raw-${tag}`, 'chunks');
    const dbName = `bench-idb-vol-${tag}`;
    const ns = await backends.idb(dbName);
    const vol = await Volume.create(ns, { size: ISEQ, blockSize: 64 * KiB });
    const data = seqData.subarray(0, ISEQ);
    const buf = new Uint8Array(CHUNK);
    try {
      const [ow, pw] = await pairTimes(rounds,
        async () => {
          for (let o = 0; o < ISEQ; o += CHUNK) await vol.write(o, data.subarray(o, o + CHUNK));
          await vol.flush();
        },
        async () => {
          for (let o = 0; o < ISEQ; o += CHUNK) {
            const entries: [number, Uint8Array][] = [];
            for (let c = o; c < o + CHUNK; c += CH) entries.push([c / CH, data.slice(c, c + CH)]);
            await setMany(entries, peerStore);
          }
        });
      out.push(result('IndexedDB: sequential 1 MiB writes + flush', ISEQ / MiB / ow, ISEQ / MiB / pw, 'MiB/s', 'idb-keyval setMany of 64 KiB chunks', undefined, `${ISEQ / MiB} MiB; one setMany (one transaction) per MiB on the peer side`));
      const [orr, prr] = await pairTimes(rounds,
        async () => { for (let o = 0; o < ISEQ; o += CHUNK) await vol.readInto(o, buf); },
        async () => {
          for (let o = 0; o < ISEQ; o += CHUNK) {
            const keys: number[] = [];
            for (let c = o; c < o + CHUNK; c += CH) keys.push(c / CH);
            const got = await getMany<Uint8Array>(keys, peerStore);
            for (let k = 0; k < got.length; k++) buf.set(got[k]!, k * CH);
          }
        });
      out.push(result('IndexedDB: sequential 1 MiB reads', ISEQ / MiB / orr, ISEQ / MiB / prr, 'MiB/s', 'idb-keyval getMany of 64 KiB chunks', undefined, `${ISEQ / MiB} MiB`));
      const IR = quick ? 200 : 1000;
      const offs = offsets(IR, ISEQ, 4 * KiB, 5);
      const b4 = new Uint8Array(4 * KiB);
      const [or, pr] = await pairTimes(rounds,
        async () => { for (const o of offs) await vol.readInto(o, b4); },
        async () => {
          for (const o of offs) {
            const [chunk] = await getMany<Uint8Array>([Math.floor(o / CH)], peerStore);
            b4.set(chunk!.subarray(o % CH, (o % CH) + 4 * KiB));
          }
        });
      out.push(result('IndexedDB: random 4 KiB reads', IR / or, IR / pr, 'ops/s', 'idb-keyval get of the 64 KiB chunk', undefined, `${IR} reads`));
    } finally {
      await vol.close();
      await clear(peerStore).catch(() => {});
      await backends.removeIdb?.(dbName).catch(() => {});
      await backends.removeIdb?.(`bench-idb-raw-${tag}`).catch(() => {});
    }
  }
  return out;
}
