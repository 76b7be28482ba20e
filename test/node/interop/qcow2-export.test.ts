import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainFileNames, exportQcow2 } from '../../../src/interop/qcow2/export.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { cli, ok, pattern, tempDir } from '../cli/harness.js';
import { KiB, MiB, buildVolume, expectCheckClean, expectIdentical, mapAt, qemuImg, qemuImgAvailable, qemuMap, rawExport } from './qcow2-export-helpers.js';

const SNAPSHOTS = ['s1', 's2', 's3'];

describe.skipIf(!qemuImgAvailable())('qcow2 export, judged by qemu-img', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  for (const blockSize of [4 * KiB, 64 * KiB, 1 * MiB]) {
    describe(`block size ${blockSize / KiB}K`, () => {
      const dir = join(tmp.dir, `vol-${blockSize}`);
      const out = (name: string) => join(tmp.dir, `${blockSize}-${name}`);
      // Not a multiple of the block (= cluster) size.
      const size = 30 * blockSize + 1234;
      beforeAll(async () => {
        const v = await buildVolume(dir, blockSize, size);
        await v.close();
        for (const s of ['', ...SNAPSHOTS]) await rawExport(s ? `${dir}@${s}` : dir, out(`raw${s}.img`));
      });

      it('flattened: the live view and every snapshot pass check and compare identical', async () => {
        for (const s of ['', ...SNAPSHOTS]) {
          const q = out(`flat${s}.qcow2`);
          await ok(['export', s ? `${dir}@${s}` : dir, q]);
          expectCheckClean(q);
          expectIdentical(q, out(`raw${s}.img`));
        }
      });

      it('flattened: map shows data, zero and unallocated regions where the volume has them', async () => {
        const q = out('flat.qcow2');
        const map = qemuMap(q);
        const bs = blockSize;
        // data
        expect(mapAt(map, 0 * bs + 5).data).toBe(false); // zeroed in s3
        expect(mapAt(map, 2 * bs).data).toBe(true);
        expect(mapAt(map, 25 * bs).data).toBe(true);
        // known zero (written as zeros over data below): zero, not data, present. (Zeros written
        // over blocks nothing holds, like 20..22, stay absent in the volume and so unallocated.)
        for (const at of [0, bs, 7 * bs, 12 * bs]) {
          const e = mapAt(map, at);
          expect(e.zero && !e.data, `at ${at}: ${JSON.stringify(e)}`).toBe(true);
          if (e.present !== undefined) expect(e.present).toBe(true);
        }
        // never written: unallocated
        for (const at of [3 * bs, 15 * bs, 21 * bs, 27 * bs]) {
          const e = mapAt(map, at);
          expect(e.data).toBe(false);
          if (e.present !== undefined) expect(e.present, `at ${at}`).toBe(false);
        }
      });

      it('flattened: round trip through qemu-img convert -O raw', async () => {
        const back = out('back.img');
        qemuImg(['convert', '-f', 'qcow2', '-O', 'raw', out('flat.qcow2'), back]);
        // qemu-img rounds the size up to whole 512-byte sectors; the padding is zeros.
        const got = readFileSync(back);
        const want = readFileSync(out('raw.img'));
        expect(got.length).toBe(Math.ceil(want.length / 512) * 512);
        expect(Buffer.compare(got.subarray(0, want.length), want)).toBe(0);
        expect(got.subarray(want.length).every((b) => b === 0)).toBe(true);
      });

      it('chain: one file per layer, backed by the one below, identical to the raw export', async () => {
        for (const s of ['', ...SNAPSHOTS]) {
          const q = out(`chain${s}.qcow2`);
          await ok(['export', s ? `${dir}@${s}` : dir, q, '--chain']);
          const info = JSON.parse(qemuImg(['info', '--backing-chain', '--output=json', q])) as { filename: string; 'backing-filename'?: string; 'backing-filename-format'?: string }[];
          const depth = s === '' ? 4 : SNAPSHOTS.indexOf(s) + 1;
          expect(info.length).toBe(depth);
          for (let i = 0; i < info.length; i++) {
            expectCheckClean(info[i]!.filename);
            if (i + 1 < info.length) {
              expect(info[i]!['backing-filename']).toBe(info[i + 1]!.filename.split('/').pop());
              expect(info[i]!['backing-filename-format']).toBe('qcow2');
            } else {
              expect(info[i]!['backing-filename']).toBeUndefined();
            }
          }
          expectIdentical(q, out(`raw${s}.img`));
        }
      });

      it('chain: zero blocks over lower data are zero clusters that mask the backing file', async () => {
        const q = out('chain.qcow2');
        const map = qemuMap(q);
        // Block 7: data in s2's layer, zeroed in the live layer (depth 0 of the chain).
        const e = mapAt(map, 7 * blockSize);
        expect(e.zero && !e.data && e.depth === 0, JSON.stringify(e)).toBe(true);
        // Block 10: data from the base layer, untouched since: depth 3.
        expect(mapAt(map, 10 * blockSize).depth).toBe(3);
      });
    });
  }

  it('flattened with a cluster size smaller and larger than the block size', async () => {
    const dir = join(tmp.dir, 'vol-mixed');
    const size = 30 * 64 * KiB + 1234;
    const v = await buildVolume(dir, 64 * KiB, size);
    await v.close();
    await rawExport(dir, join(tmp.dir, 'mixed.img'));
    for (const cs of ['4K', '512', '1M', '2M']) {
      const q = join(tmp.dir, `mixed-${cs}.qcow2`);
      await ok(['export', dir, q, '--cluster-size', cs]);
      expectCheckClean(q);
      expectIdentical(q, join(tmp.dir, 'mixed.img'));
    }
  });

  it('chain export refuses a cluster size other than the block size', async () => {
    const dir = join(tmp.dir, 'vol-mixed');
    const r = await cli(['export', dir, join(tmp.dir, 'refused.qcow2'), '--chain', '--cluster-size', '4K']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/block size/);
  });

  it('an empty volume, and a zero-byte volume', async () => {
    for (const [name, size] of [['empty', 10 * MiB + 512], ['nothing', 0]] as const) {
      const dir = join(tmp.dir, `vol-${name}`);
      await ok(['create', dir, '--size', String(size)]);
      await rawExport(dir, join(tmp.dir, `${name}.img`));
      for (const chain of [false, true]) {
        const q = join(tmp.dir, `${name}-${chain}.qcow2`);
        await ok(['export', dir, q, ...(chain ? ['--chain'] : [])]);
        expectCheckClean(q);
        expectIdentical(q, join(tmp.dir, `${name}.img`));
      }
    }
  });

  it('a 1 TiB sparse volume exports to a small file, flattened and chained', async () => {
    const dir = join(tmp.dir, 'vol-tera');
    const T = 1024 ** 4;
    const v = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size: T });
    await v.write(0, pattern(256 * KiB, 11));
    await v.write(T / 2 + 12345, pattern(100 * KiB, 12));
    await v.write(T - 64 * KiB, pattern(64 * KiB, 13));
    await v.snapshot('a');
    await v.writeZeroes(64 * KiB, 64 * KiB);
    await v.write(T / 4, pattern(64 * KiB, 14));
    await v.close();
    const raw = join(tmp.dir, 'tera.img');
    await rawExport(dir, raw);
    for (const chain of [false, true]) {
      const q = join(tmp.dir, `tera-${chain}.qcow2`);
      await ok(['export', dir, q, ...(chain ? ['--chain'] : [])]);
      expectCheckClean(q);
      expect(statSync(q).size).toBeLessThan(4 * MiB);
      const info = JSON.parse(qemuImg(['info', '--output=json', q])) as { 'virtual-size': number };
      expect(info['virtual-size']).toBe(1024 ** 4);
      expectIdentical(q, raw);
    }
  });

  it('cancel and errors delete the files written so far; progress reaches the total', async () => {
    const dir = join(tmp.dir, 'vol-cancel');
    const v = await buildVolume(dir, 64 * KiB, 40 * 64 * KiB);
    try {
      const file = join(tmp.dir, 'cancel.qcow2');
      const names = chainFileNames(file, v.layerChain());
      const ac = new AbortController();
      let calls = 0;
      const p = exportQcow2(v, file, { chain: true, signal: ac.signal, onProgress: () => ++calls > 2 && ac.abort() });
      await expect(p).rejects.toMatchObject({ code: 'aborted' });
      for (const f of names) expect(existsSync(f), f).toBe(false);
      let last: [number, number] = [0, -1];
      const r = await exportQcow2(v, file, { chain: true, onProgress: (d, t) => (last = [d, t]) });
      expect(last[0]).toBe(last[1]);
      expect(last[1]).toBe(r.dataBytes);
      expect(r.images.map((i) => i.file)).toEqual([...names].reverse());
    } finally {
      await v.close();
    }
  });

  it('export options: --format raw refuses --chain; an unknown format is a usage error', async () => {
    const dir = join(tmp.dir, 'vol-empty');
    expect((await cli(['export', dir, join(tmp.dir, 'x.img'), '--format', 'raw', '--chain'])).code).toBe(2);
    expect((await cli(['export', dir, join(tmp.dir, 'x.img'), '--format', 'vmdk'])).code).toBe(2);
    // The suffix picks qcow2 when --format is absent; --format qcow2 works with any name.
    await ok(['export', dir, join(tmp.dir, 'named.disk'), '--format', 'qcow2']);
    expectCheckClean(join(tmp.dir, 'named.disk'));
  });

  it('chain file names', () => {
    expect(chainFileNames('/x/disk.qcow2', ['L3', 'L2', 'L1'])).toEqual(['/x/disk.qcow2', '/x/disk.L2.qcow2', '/x/disk.L1.qcow2']);
    expect(chainFileNames('out.img', ['L2', 'L1'])).toEqual(['out.img', 'out.img.L1.qcow2']);
  });
});
