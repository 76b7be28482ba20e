/**
 * `copy` benchmark (group `copy`): a 4-layer chain (base <- s1 <- s2 <- live, 64 KiB blocks) is
 * copied to a store that already holds the base (a volume holding snapshot `base`, made by an
 * earlier copy of SRC@base), so the base is re-linked (after its data is read back and checked)
 * and only the three deltas move. Base 256 MiB and deltas 16 MiB each (quick: 8 MiB, 1 MiB), of
 * random data in Node directories.
 *
 * Rows (paired rounds, 3; quick: 1; each round on a fresh copy of the destination):
 * 1. bytes moved: our copy's data bytes vs a plain `cp -r` of the whole source directory (what
 *    a copy without re-linking moves); the note gives bytes moved / delta bytes (1.0 is ideal).
 * 2. time: delta MB/s of our copy (open, plan, check the base, copy and check every block, fsync,
 *    commit) vs `cp` of the same files, i.e. the delta layers' data and map files, followed by
 *    `sync` of the copies (our copy fsyncs too); informative, the same copy with `checkReused:
 *    false` (the base is not read back), which shows what the check of the base costs.
 * 3. into an object store (an ObjectNamespace: part objects of 4 MiB and size records) that
 *    holds the base, vs the same copy into a directory holding the base, same rounds: bytes put
 *    (every object: data parts, maps, manifests, the lease) / delta bytes, and delta MB/s. The
 *    object store is a DirObjectStore in the same temporary directory (atomic puts: temp file,
 *    fsync, rename), or the one STRATADISK_BENCH_OBJECTS names (s3://BUCKET/PREFIX with the AWS
 *    variables, e.g. the test server test/node/helpers/s3-server.ts starts; a fresh prefix per
 *    round under it). Informative: the same copy into the object store with `checkReused: false`.
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NodeDirNamespace } from '../store/node-dir.js';
import { copyVolume } from '../transfer/copy.js';
import { FaultObjectStore } from '../transfer/fault-objects.js';
import { ObjectNamespace } from '../transfer/object-namespace.js';
import { openObjectStore } from '../transfer/open-objects.js';
import { dataName, mapName } from '../volume/layer.js';
import { Volume } from '../volume/volume.js';
import { pairedResult, runPairedRounds, type BenchResult } from './result.js';

const run = promisify(execFile);
const BLOCK = 64 * 1024;
const MB = 1e6;

async function writeRandom(v: Volume, offset: number, bytes: number): Promise<void> {
  const buf = new Uint8Array(Math.min(bytes, 8 << 20));
  for (let at = 0; at < bytes; at += buf.length) {
    const n = Math.min(buf.length, bytes - at);
    randomFillSync(buf.subarray(0, n));
    await v.write(offset + at, buf.subarray(0, n));
  }
}

/** The source chain; returns the files of the three delta layers (data and map). */
async function makeChain(dir: string, base: number, delta: number): Promise<string[]> {
  const v = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size: base + 4 * delta, blockSize: BLOCK });
  try {
    await writeRandom(v, 0, base);
    await v.snapshot('base');
    for (const [i, name] of ['s1', 's2', ''].entries()) {
      await writeRandom(v, base + i * delta, delta);
      if (name) await v.snapshot(name);
    }
    await v.flush();
    const files: string[] = [];
    for (const id of v.layerChain().slice(0, 3)) files.push(dataName(id), mapName(id, v.manifest.layers.find((l) => l.id === id)!.mapGen ?? 0));
    return files.map((f) => join(dir, f));
  } finally {
    await v.close();
  }
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir)) n += (await stat(join(dir, f))).size;
  return n;
}

export async function benchCopy(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const base = quick ? 8 << 20 : 256 << 20;
  const delta = quick ? 1 << 20 : 16 << 20;
  const rounds = quick ? 1 : 3;
  const root = await mkdtemp(join(tmpdir(), 'stratadisk-bench-copy-'));
  try {
    const src = join(root, 'src');
    const deltaFiles = await makeChain(src, base, delta);
    const template = join(root, 'holds-base');
    await copyVolume(new NodeDirNamespace(src, { readOnly: true }), new NodeDirNamespace(template, { create: true }), { snapshot: 'base' });
    const srcBytes = await dirBytes(src);
    const deltaBytes = 3 * delta;
    let k = 0;
    const moved: number[] = [];
    const verified: number[] = [];
    const ours = async (checkReused: boolean) => {
      const dst = join(root, `dst-${k++}`);
      await run('cp', ['-r', template, dst]);
      const t0 = performance.now();
      const r = await copyVolume(new NodeDirNamespace(src, { readOnly: false }), new NodeDirNamespace(dst), { checkReused });
      const secs = (performance.now() - t0) / 1000;
      if (checkReused) {
        moved.push(r.bytesMoved);
        verified.push(r.bytesVerified);
      }
      await rm(dst, { recursive: true, force: true });
      return deltaBytes / MB / secs;
    };
    const [checked, trusted, peer] = await runPairedRounds(
      [
        () => ours(true),
        () => ours(false),
        async () => {
          const dst = join(root, `cp-${k++}`);
          await run('mkdir', ['-p', dst]);
          const t0 = performance.now();
          await run('sh', ['-c', 'cp "$@" "$D" && cd "$D" && sync -- *', 'cp-delta', ...deltaFiles], { env: { ...process.env, D: dst } });
          const secs = (performance.now() - t0) / 1000;
          await rm(dst, { recursive: true, force: true });
          return deltaBytes / MB / secs;
        },
      ],
      rounds,
    );
    const movedMB = moved.map((b) => b / MB);
    const note = `4-layer chain, base ${base >> 20} MiB re-linked (read back and checked: ${Math.round(verified[0]! / MB)} MB), deltas 3 x ${delta >> 20} MiB; bytes moved / delta bytes = ${(moved[0]! / deltaBytes).toFixed(3)}`;
    const objectRows = await benchIntoObjects(root, src, template, deltaBytes, rounds);
    return [
      pairedResult('copy to a store holding the base: data moved', movedMB, movedMB.map(() => srcBytes / MB), 'MB moved', 'cp -r of the whole source volume', undefined, `${note}; lower is better (ratio = our bytes / cp's)`),
      pairedResult('copy to a store holding the base: time, base not read back (checkReused: false)', trusted!, peer!, 'delta MB/s', 'cp + sync of the delta layer files', undefined, 'informative: the same copy trusting the re-linked base on its content ID (a damaged block would still fail its read, never be served)'),
      pairedResult('copy to a store holding the base: time', checked!, peer!, 'delta MB/s', 'cp + sync of the delta layer files', undefined, `${note}; ours includes opening both volumes, checking the base at the destination and every copied block, fsync and the manifest commit`),
      ...objectRows,
    ];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Rows 3: the same copy into an object namespace holding the base vs into a directory holding it. */
async function benchIntoObjects(root: string, src: string, template: string, deltaBytes: number, rounds: number): Promise<BenchResult[]> {
  const where = process.env.STRATADISK_BENCH_OBJECTS;
  let k = 0;
  const put: number[] = [];
  const parts: number[] = [];
  const srcNs = () => new NodeDirNamespace(src, { readOnly: false });
  const intoObjectStore = async (checkReused: boolean) => {
    const n = k++;
    const url = where ? `${where.replace(/\/+$/, '')}/bench-copy-${Date.now()}-${n}` : join(root, `objects-${n}`);
    const objects = await openObjectStore(url, { create: true });
    // the destination holds the base (not timed)
    await copyVolume(new NodeDirNamespace(src, { readOnly: true }), new ObjectNamespace(objects), { snapshot: 'base' });
    const counted = new FaultObjectStore(objects);
    const t0 = performance.now();
    await copyVolume(srcNs(), new ObjectNamespace(counted), { checkReused });
    const secs = (performance.now() - t0) / 1000;
    if (checkReused) {
      put.push(counted.putBytes);
      parts.push(counted.putLog.filter((key) => key.startsWith('volume/parts/')).length);
    }
    if (!where) await rm(url, { recursive: true, force: true });
    return deltaBytes / MB / secs;
  };
  const [intoObjects, intoObjectsTrusted, intoDir] = await runPairedRounds(
    [
      () => intoObjectStore(true),
      () => intoObjectStore(false),
      async () => {
        const dst = join(root, `dir-${k++}`);
        await run('cp', ['-r', template, dst]);
        const t0 = performance.now();
        await copyVolume(srcNs(), new NodeDirNamespace(dst));
        const secs = (performance.now() - t0) / 1000;
        await rm(dst, { recursive: true, force: true });
        return deltaBytes / MB / secs;
      },
    ],
    rounds,
  );
  const kind = where ? 'an S3 endpoint' : 'a local directory object store';
  const note = `${kind}, 4 MiB parts; bytes put / delta bytes = ${(put[0]! / deltaBytes).toFixed(3)} (${parts[0]} part puts)`;
  return [
    pairedResult('copy into an object store holding the base: bytes put', put.map((b) => b / MB), put.map(() => deltaBytes / MB), 'MB put', 'delta bytes of the chain', undefined, `${note}; 1.0 is ideal`),
    pairedResult('copy into an object store holding the base: time', intoObjects!, intoDir!, 'delta MB/s', 'the same copy into a directory holding the base', undefined, `${note}; both read back and check the base at the destination`),
    pairedResult('copy into an object store holding the base: time, base not read back (checkReused: false)', intoObjectsTrusted!, intoDir!, 'delta MB/s', 'the same copy into a directory holding the base (base read back)', undefined, 'informative: what reading the base back through the object store costs'),
  ];
}
