/**
 * Issue 12, item 4: no image is stored as the wrong thing. Containers are recognised by content
 * and refused by name (`unsupported`, with the way to convert them); `--format raw` stores the
 * bytes anyway. The detector never throws and never mistakes random or cut-short bytes for a
 * container it is not.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { detectFormat, detectStore, HEAD_BYTES, TAIL_BYTES, type DetectedFormat } from '../../../src/interop/detect.js';
import { importQcow2 } from '../../../src/interop/qcow2/import.js';
import { NodeFileStore } from '../../../src/store/node-file.js';
import { cli, ok, pattern } from '../cli/harness.js';
import { Rng } from '../helpers/random.js';
import { haveQemu, qemuImg } from './fixtures/qemu.js';
import { dirDigest } from './fixtures/volume-state.js';

const work = mkdtempSync(join(tmpdir(), 'stratadisk-detect-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The detector over whole file contents, as detectStore would read them. */
function detectBytes(b: Uint8Array): DetectedFormat {
  const tail = b.length >= TAIL_BYTES ? b.subarray(b.length - TAIL_BYTES) : new Uint8Array(0);
  return detectFormat(b.subarray(0, HEAD_BYTES), tail, b.length);
}

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
function withAt(size: number, offset: number, bytes: Uint8Array): Uint8Array {
  const b = new Uint8Array(size);
  b.set(bytes, offset);
  return b;
}

describe('detectFormat on crafted bytes', () => {
  const cases: [string, Uint8Array, string][] = [
    ['qcow2', withAt(1024, 0, Uint8Array.of(0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3)), 'qcow2'],
    ['qcow v1', withAt(1024, 0, Uint8Array.of(0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 1)), 'qcow'],
    ['VMDK sparse', withAt(1024, 0, ascii('KDMV')), 'vmdk'],
    ['VMDK ESX', withAt(1024, 0, ascii('COWD')), 'vmdk'],
    ['VMDK descriptor', ascii('# Disk DescriptorFile\nversion=1\nCID=fffffffe\n'), 'vmdk'],
    ['VMDK descriptor, qemu rule', ascii('# some comment\n  version=2\r\ncreateType="monolithicFlat"\n'), 'vmdk'],
    ['VHD dynamic (footer copy at 0)', withAt(2048, 0, ascii('conectix')), 'vhd'],
    ['VHD fixed (footer at the end)', withAt(4096, 4096 - 512, ascii('conectix')), 'vhd'],
    ['VHD, old 511-byte footer', withAt(4095, 4095 - 511, ascii('conectix')), 'vhd'],
    ['VHDX', withAt(1024, 0, ascii('vhdxfile')), 'vhdx'],
    ['VDI signature', withAt(1024, 0x40, Uint8Array.of(0x7f, 0x10, 0xda, 0xbe)), 'vdi'],
    ['VDI text', ascii('<<< Oracle VM VirtualBox Disk Image >>>\n'), 'vdi'],
    ['QED', withAt(1024, 0, ascii('QED\0')), 'qed'],
    ['Parallels', withAt(1024, 0, ascii('WithoutFreeSpace')), 'parallels'],
    ['Bochs', withAt(1024, 0, ascii('Bochs Virtual HD Image')), 'bochs'],
    ['cloop', ascii('#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0\n'), 'cloop'],
    ['DMG', withAt(4096, 4096 - 512, ascii('koly')), 'dmg'],
    ['LUKS', withAt(1024, 0, Uint8Array.of(0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe, 0, 2)), 'luks'],
    ['gzip', gzipSync(new Uint8Array(10_000)), 'gzip'],
    ['xz', withAt(64, 0, Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0)), 'xz'],
    ['zstd', withAt(64, 0, Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd)), 'zstd'],
    ['bzip2', withAt(64, 0, ascii('BZh91AY&SY')), 'bzip2'],
    ['tar', withAt(1024, 257, ascii('ustar\0')), 'tar'],
    // Raw on purpose: an ISO's bytes are the medium; an MBR disk; text; zeros.
    ['ISO 9660', withAt(40_000, 0x8001, ascii('CD001')), 'raw'],
    ['MBR', withAt(512, 510, Uint8Array.of(0x55, 0xaa)), 'raw'],
    ['text', ascii('hello, world\nversion=1\n'), 'raw'],
    ['zeros', new Uint8Array(1 << 16), 'raw'],
  ];
  for (const [name, bytes, want] of cases) {
    it(`${name} -> ${want}`, () => {
      expect(detectBytes(bytes).format).toBe(want);
    });
  }

  it('tiny inputs (0 to 600 bytes of each magic, cut) never throw', () => {
    for (const [, bytes] of cases) {
      for (let n = 0; n <= Math.min(bytes.length, 600); n++) detectBytes(bytes.slice(0, n));
    }
    for (let n = 0; n < 16; n++) expect(detectBytes(new Uint8Array(n)).format).toBe('raw');
  });

  it('random bytes are raw: 3000 files of random sizes, never a throw or a container', () => {
    const rng = new Rng(12);
    const hits: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const n = rng.pick([0, 1, 3, 4, 7, 63, 64, 511, 512, 513, 4095, 4096, 4097, rng.int(20_000)]);
      const d = detectBytes(rng.bytes(n));
      if (d.format !== 'raw') hits.push(`${n} bytes: ${d.format}`);
    }
    expect(hits).toEqual([]);
  });
});

/** Images made by qemu-img, empty and with data, per format: [label, qemu -f, create options, expected]. */
const REAL: [string, string, string[], DetectedFormat['format'], RegExp][] = [
  ['vmdk sparse', 'vmdk', [], 'vmdk', /VMDK image \(sparse extent\)/],
  ['vmdk stream-optimized', 'vmdk', ['-o', 'subformat=streamOptimized'], 'vmdk', /VMDK image \(stream-optimized\)/],
  ['vmdk descriptor (monolithicFlat)', 'vmdk', ['-o', 'subformat=monolithicFlat'], 'vmdk', /VMDK descriptor/],
  ['vhd dynamic', 'vpc', [], 'vhd', /VHD image \(dynamic\)/],
  ['vhd fixed', 'vpc', ['-o', 'subformat=fixed'], 'vhd', /VHD image \(fixed\)/],
  ['vhdx', 'vhdx', [], 'vhdx', /VHDX image/],
  ['vdi', 'vdi', [], 'vdi', /VDI \(VirtualBox\) image/],
  ['qed', 'qed', [], 'qed', /QED image/],
  ['qcow v1', 'qcow', [], 'qcow', /qcow \(version 1\) image/],
  ['parallels', 'parallels', [], 'parallels', /Parallels image/],
];

describe.skipIf(!haveQemu())('real images from qemu-img', () => {
  const dataRaw = join(work, 'data.raw');
  const made = new Map<string, string[]>();
  /** An empty image and one converted from a raw file with data, of one format. */
  function images(label: string, fmt: string, opts: string[]): string[] {
    if (made.has(label)) return made.get(label)!;
    const d = join(work, label.replace(/\W+/g, '-'));
    mkdirSync(d, { recursive: true });
    const ext = fmt === 'vpc' ? 'vhd' : fmt;
    const empty = join(d, `empty.${ext}`);
    qemuImg('create', '-q', '-f', fmt, ...opts, empty, '8M');
    const b = new Uint8Array(8 << 20);
    b.set(pattern(300_000, 4), 1 << 20);
    b.set(pattern(5000, 5), 7 << 20);
    writeFileSync(dataRaw, b);
    const full = join(d, `full.${ext}`);
    qemuImg('convert', '-q', '-f', 'raw', '-O', fmt, ...opts, dataRaw, full);
    made.set(label, [empty, full]);
    return [empty, full];
  }

  for (const [label, fmt, opts, want, what] of REAL) {
    it(`${label}: detected, refused by name with a way to convert it, imported only with --format raw`, async () => {
      for (const img of images(label, fmt, opts)) {
        const store = await NodeFileStore.open(img, { readOnly: true });
        try {
          expect((await detectStore(store)).format, img).toBe(want);
        } finally {
          await store.close();
        }
        const vol = join(work, `vol-${label.replace(/\W+/g, '-')}-${img.includes('full') ? 'full' : 'empty'}`);
        await ok(['create', vol, '--size', '16M']);
        const files = dirDigest(vol);
        const r = await cli(['import', vol, img]);
        expect(r.code, r.stdout).toBe(2);
        expect(r.stderr).toMatch(/^stratadisk: unsupported: /);
        expect(r.stderr).toMatch(what);
        expect(r.stderr).toContain(`qemu-img convert -f ${fmt} -O qcow2 ${img}`);
        expect(r.stderr).toMatch(/--format raw/);
        expect(dirDigest(vol)).toEqual(files);
        // --format qcow2 says what it is instead; --format raw stores the bytes as asked.
        expect((await cli(['import', vol, img, '--format', 'qcow2'])).stderr).toMatch(/^stratadisk: invalid-argument: .*is not a qcow2 image/);
        expect(await ok(['import', vol, img, '--format', 'raw'])).toMatch(/^Imported /);
      }
    });
  }

  /**
   * A damaged image is its own format or raw. A qcow magic whose version is cut off or damaged
   * goes to the qcow2 reader, which names the version it cannot read.
   */
  const allowed = (want: string, got: string) => got === want || got === 'raw' || (want === 'qcow' && got === 'qcow2');

  it('cut-short and bit-flipped real images never throw and are never taken for another container', () => {
    const rng = new Rng(7);
    const wrong: string[] = [];
    for (const [label, fmt, opts, want] of REAL) {
      for (const img of images(label, fmt, opts)) {
        const bytes = new Uint8Array(readFileSync(img));
        const cuts = [0, 1, 4, 8, 63, 64, 67, 68, 100, 511, 512, 513, 1024, 4096, bytes.length - 513, bytes.length - 512, bytes.length - 511, bytes.length - 1];
        for (let i = 0; i < 40; i++) cuts.push(rng.int(bytes.length));
        for (const n of cuts) {
          if (n < 0 || n > bytes.length) continue;
          const got = detectBytes(bytes.subarray(0, n)).format;
          if (!allowed(want, got)) wrong.push(`${img} cut at ${n}: ${got}`);
        }
        for (let i = 0; i < 200; i++) {
          const m = bytes.slice(0, Math.min(bytes.length, 8192));
          const tail = bytes.slice(Math.max(0, bytes.length - 512));
          for (let k = 0; k < 4; k++) m[rng.int(m.length)] ^= 1 << rng.int(8);
          for (let k = 0; k < 2; k++) tail[rng.int(tail.length)] ^= 1 << rng.int(8);
          const got = detectFormat(m.subarray(0, HEAD_BYTES), tail.length === 512 ? tail : new Uint8Array(0), bytes.length).format;
          if (!allowed(want, got)) wrong.push(`${img} with flipped bits: ${got}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('a backing file of unrecorded format that is a VMDK is refused, not read as raw', async () => {
    const d = join(work, 'backing-vmdk');
    mkdirSync(d);
    qemuImg('create', '-q', '-f', 'vmdk', join(d, 'base.vmdk'), '4M');
    const top = join(d, 'top.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.vmdk', '-F', 'vmdk', top, '4M');
    // qemu-img insists on recording the backing format; older images often lack it. Drop the
    // backing-format header extension (type 0xe2792aca) by making it the end of the list.
    const bytes = readFileSync(top);
    const at = bytes.indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]));
    expect(at).toBeGreaterThan(0);
    bytes.fill(0, at, at + 4);
    writeFileSync(top, bytes);
    expect(qemuImg('info', top)).not.toMatch(/backing file format/);
    await expect(importQcow2(join(d, 'vol'), top)).rejects.toMatchObject({ code: 'unsupported', message: expect.stringMatching(/base\.vmdk\) is a VMDK image/) });
  });
});

describe('compressed files and archives', () => {
  const tools: [string, string[], DetectedFormat['format'], string][] = [
    ['xz', ['-k', '-f'], 'xz', '.xz'],
    ['bzip2', ['-k', '-f'], 'bzip2', '.bz2'],
    ['zstd', ['-q', '-f'], 'zstd', '.zst'],
    ['gzip', ['-k', '-f'], 'gzip', '.gz'],
  ];
  for (const [tool, args, want, ext] of tools) {
    const have = spawnSync(tool, ['--version']).status === 0;
    it.skipIf(!have)(`${tool}: refused with the command that decompresses it`, async () => {
      const raw = join(work, `disk-${tool}.img`);
      writeFileSync(raw, pattern(200_000, 3));
      expect(spawnSync(tool, [...args, raw]).status).toBe(0);
      const vol = join(work, `vol-${tool}`);
      await ok(['create', vol, '--size', '1M']);
      const r = await cli(['import', vol, raw + ext]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^stratadisk: unsupported: .*is an? ${want}-compressed file.*Decompress it first`));
      expect(detectBytes(new Uint8Array(readFileSync(raw + ext))).format).toBe(want);
    });
  }

  it.skipIf(spawnSync('tar', ['--version']).status !== 0)('a tar archive (an OVA is one) is refused', async () => {
    const d = join(work, 'ova');
    mkdirSync(d);
    writeFileSync(join(d, 'disk.img'), pattern(10_000, 1));
    expect(spawnSync('tar', ['-cf', join(work, 'x.ova'), '-C', d, 'disk.img']).status).toBe(0);
    const vol = join(work, 'vol-tar');
    await ok(['create', vol, '--size', '1M']);
    const r = await cli(['import', vol, join(work, 'x.ova')]);
    expect(r.stderr).toMatch(/^stratadisk: unsupported: .*tar archive.*tar -xf/);
  });

  it('tiny raw files import as raw; --format must be raw or qcow2', async () => {
    const vol = join(work, 'vol-tiny');
    await ok(['create', vol, '--size', '1M']);
    for (const n of [0, 1, 3, 4, 511]) {
      const f = join(work, `tiny-${n}.img`);
      writeFileSync(f, pattern(n, n + 1));
      expect(await ok(['import', vol, f])).toMatch(/^Imported /);
    }
    const r = await cli(['import', vol, join(work, 'tiny-4.img'), '--format', 'vmdk']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--format must be raw or qcow2/);
  });
});
