/**
 * Checked-in volumes of each manifest record version (test/fixtures/formats/): version 1 (written
 * by stratadisk before layer links) and version 2 (links recorded). Both open and read what was
 * written; the first commit on a version-1 volume writes version 2, with links for new layers;
 * a record version this stratadisk does not know is `unsupported`, never guessed at.
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
