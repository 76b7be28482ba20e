/**
 * Checked-in volumes of each manifest record version (test/fixtures/formats/): version 1 (written
 * by stratadisk before layer links) and version 2 (links recorded). Both open and read what was
 * written; the first commit on a version-1 volume writes version 2, with links for new layers;
 * a record version this stratadisk does not know is `unsupported`, never guessed at. A volume
 * that keeps a write log (journal/v1) has manifest JSON version 3 with its requirement: read-only
 * it opens as any volume, but a plain writable open is refused (its writes would pass the log by).
 *
 * Each fixture: 256 KiB, 4 KiB blocks; snapshot `base` = 8 KiB of 0x11 at 0; snapshot `s1` adds
 * 4 KiB of 0x22 at 16 KiB and zeros block 1 (4 KiB); the live view adds 100 bytes of 0x33 at 32 KiB.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeRecord } from '../../../src/format/record.js';
import { openJournaled } from '../../../src/journal/open.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/formats/', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'stratadisk-fixtures-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;

function copyOf(name: string): string {
  const dir = join(work, `${seq++}-${name.replace('/', '-')}`);
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

/** Record version of each manifest slot. */
const recordVersions = (dir: string) => ['manifest.0', 'manifest.1'].map((s) => readFileSync(join(dir, s)).readUInt16LE(6));

function expected(view: 'base' | 's1' | 'live'): Uint8Array {
  const b = new Uint8Array(256 * 1024);
  b.fill(0x11, 0, 8192);
  if (view === 'base') return b;
  b.fill(0x22, 16384, 20480);
  b.fill(0, 4096, 8192);
  if (view === 's1') return b;
  b.fill(0x33, 32768, 32868);
  return b;
}

describe.each([
  ['volume/v1', 1],
  ['volume/v2', 2],
])('fixture %s', (name, version) => {
  it(`is record version ${version}, opens and reads every view`, async () => {
    const dir = copyOf(name);
    expect(recordVersions(dir)).toEqual([version, version]);
    const v = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
    expect(v.snapshots().map((s) => s.name)).toEqual(['base', 's1']);
    expect(await v.openSnapshot('base').read(0, v.size)).toEqual(expected('base'));
    expect(await v.openSnapshot('s1').read(0, v.size)).toEqual(expected('s1'));
    expect(await v.read(0, v.size)).toEqual(expected('live'));
    const linked = v.manifest.layers.filter((l) => l.parentContentId !== undefined).length;
    expect(linked).toBe(version === 1 ? 0 : 2);
    expect((await v.check()).ok).toBe(true);
    await v.close();
  });

  it('a writable open and a snapshot write record version 2, linking the new layer', async () => {
    const dir = copyOf(name);
    const v = await Volume.open(new NodeDirNamespace(dir));
    await v.snapshot('s2');
    const top = v.manifest.layers.find((l) => l.id === v.manifest.active)!;
    expect(top.parentContentId).toBe(v.snapshots().find((s) => s.name === 's2')!.contentId);
    await v.close();
    expect(recordVersions(dir)).toContain(2);
    const again = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
    expect(await again.read(0, again.size)).toEqual(expected('live'));
    await again.close();
  });
});

it('a manifest record of a version this stratadisk does not know is unsupported', async () => {
  const dir = copyOf('volume/v2');
  for (const slot of ['manifest.0', 'manifest.1']) {
    const b = readFileSync(join(dir, slot));
    const payload = b.subarray(24, b.length - 8);
    const head = { magic: b.readUInt32LE(0), kind: b.readUInt16LE(4), version: 3, seq: b.readUInt32LE(8), length: payload.length };
    writeFileSync(join(dir, slot), encodeRecord(head, payload));
  }
  await expect(Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true })).rejects.toMatchObject({ code: 'unsupported', message: expect.stringMatching(/format version 3; this stratadisk reads versions 1 and 2\. Upgrade stratadisk: it was written by a release newer than \d+\.\d+\.\d+/) });
});

describe('fixture journal/v1 (manifest JSON version 3: a write log required)', () => {
  const want = new Uint8Array(1024 * 1024);
  // generate.mjs journal(): the volume as it was closed
  want.fill(0x11, 0, 16384);
  want.fill(0x12, 40 * 1024 + 7, 40 * 1024 + 107);
  want.fill(0x21, 4096 + 100, 4096 + 300);
  want.fill(0, 8192, 12288);
  want.fill(0, 40 * 1024 + 20, 40 * 1024 + 70);
  want.fill(0x31, 14 * 1024, 20 * 1024);
  want.fill(0x41, 512 * 1024, 520 * 1024);
  want.fill(0, 64 * 1024, 80 * 1024);
  want.fill(0x51, want.length - 100);
  want.fill(0x52, 0, 4096);

  it('is manifest record version 2, JSON version 3 with the journal requirement, and reads read-only', async () => {
    const dir = copyOf('journal/v1');
    expect(recordVersions(dir)).toEqual([2, 2]);
    const v = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
    expect(v.manifest.version).toBe(3);
    expect(v.manifest.requires).toEqual([{ name: 'journal', where: '', keeps: ['journal.base'], settings: { maxBytes: 8 * 1024 * 1024, onFull: 'refuse' } }]);
    expect(Buffer.from(await v.read(0, v.size)).equals(Buffer.from(want))).toBe(true);
    expect((await v.check()).ok).toBe(true);
    await v.close();
  });

  it('a plain writable open is refused with unsupported, changing nothing', async () => {
    const dir = copyOf('journal/v1');
    const slots = ['manifest.0', 'manifest.1'].map((s) => readFileSync(join(dir, s)));
    await expect(Volume.open(new NodeDirNamespace(dir))).rejects.toMatchObject({ code: 'unsupported', message: expect.stringContaining('write log') });
    expect(['manifest.0', 'manifest.1'].map((s) => readFileSync(join(dir, s)))).toEqual(slots);
    // the refusal released the volume: a writer that attaches the log opens it and writes
    const { volume, journal } = await openJournaled(new NodeDirNamespace(dir));
    expect(journal).not.toBeNull();
    await volume.write(0, new Uint8Array(100).fill(0x99));
    await volume.close();
  });
});
