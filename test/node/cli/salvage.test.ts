import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { cli, KiB, MiB, ok, pattern, tempDir } from './harness.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

const BS = 64 * KiB;

/**
 * A 2 MiB volume (64K blocks): s1 = 300K of data at 64K; s2 = s1 plus 200K at 1M; live = s2 plus
 * 100K at 1.5M. Returns its directory and the exported images of each view, taken while healthy.
 */
async function volume(): Promise<{ vol: string; images: Record<string, Buffer>; file: (name: string) => string }> {
  const vol = join(dir, 'vol');
  const put = async (offset: number, bytes: Uint8Array, tag: string) => {
    const f = join(dir, `${tag}.bin`);
    writeFileSync(f, bytes);
    await ok(['write', vol, '--offset', String(offset), f]);
  };
  await ok(['create', vol, '--size', '2M', '--block-size', '64K']);
  await put(64 * KiB, pattern(300 * KiB, 1), 'a');
  await ok(['snapshot', vol, 's1']);
  await put(MiB, pattern(200 * KiB, 2), 'b');
  await ok(['snapshot', vol, 's2']);
  await put(MiB + 512 * KiB, pattern(100 * KiB, 3), 'c');
  const images: Record<string, Buffer> = {};
  for (const [name, spec] of [
    ['s1', `${vol}@s1`],
    ['s2', `${vol}@s2`],
    ['live', vol],
  ] as const) {
    const f = join(dir, `${name}.img`);
    await ok(['export', spec, f]);
    images[name] = readFileSync(f);
  }
  return { vol, images, file: (name) => join(vol, name) };
}

function newestSlot(vol: string): string {
  const gen = (f: string) => (existsSync(join(vol, f)) && statSync(join(vol, f)).size >= 16 ? readFileSync(join(vol, f)).readUInt32LE(8) : -1);
  return gen('manifest.0') > gen('manifest.1') ? 'manifest.0' : 'manifest.1';
}

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0]! ^= 0x40;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

function report(out: string) {
  return JSON.parse(readFileSync(join(out, 'salvage-report.json'), 'utf8'));
}

describe('salvage', () => {
  it('a healthy volume: every snapshot and the live view, equal to export, 0700/0600, exit 0', async () => {
    const { vol, images } = await volume();
    const out = join(dir, 'out');
    const r = await cli(['salvage', vol, out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Summary: everything read was readable; 3 image\(s\) written/);
    expect(readdirSync(out).sort()).toEqual(['live.raw', 'salvage-report.json', 'salvage-report.txt', 'snapshot-s1.raw', 'snapshot-s2.raw']);
    expect(readFileSync(join(out, 'snapshot-s1.raw')).equals(images.s1!)).toBe(true);
    expect(readFileSync(join(out, 'snapshot-s2.raw')).equals(images.s2!)).toBe(true);
    expect(readFileSync(join(out, 'live.raw')).equals(images.live!)).toBe(true);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(out)) expect(statSync(join(out, f)).mode & 0o777, f).toBe(0o600);
    // sparse: the 2 MiB live image stores about its 600K of data
    expect(statSync(join(out, 'live.raw')).blocks * 512).toBeLessThan(MiB);
    const j = report(out);
    expect(j).toMatchObject({ complete: true, zeroedBytes: 0, uncertainBytes: 0, newerState: [], notExported: [] });
    expect(j.exported.map((e: { file: string }) => e.file)).toEqual(['snapshot-s1.raw', 'snapshot-s2.raw', 'live.raw']);
    const again = await cli(['salvage', vol, join(dir, 'out2'), '--json']);
    expect(JSON.parse(again.stdout).exported).toHaveLength(3);
  });

  it('a lost newest manifest slot: the surviving generation, plus the newer layer alone and on the live view', async () => {
    const { vol, images, file } = await volume();
    rmSync(file(newestSlot(vol)));
    const check = await cli(['check', vol]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/manifest\.[01] is missing/);
    expect(check.stdout).toContain(`stratadisk salvage ${vol} OUT`);
    const w = await cli(['snapshot', vol, 'x']);
    expect(w.code).toBe(2);
    expect(w.stderr).toMatch(/^stratadisk: corrupt: The volume held newer state than its manifest records/);
    expect(w.stderr).toContain(`stratadisk salvage ${vol} OUT`);

    const out = join(dir, 'out');
    const r = await cli(['salvage', vol, out]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/Newer state that the surviving manifest does not know/);
    // The survivor is the generation before snapshot s2: its live view is what s2 holds.
    expect(readdirSync(out).sort()).toEqual(['layer-L000003.raw', 'live.raw', 'newer-L000003-on-live.raw', 'salvage-report.json', 'salvage-report.txt', 'snapshot-s1.raw']);
    expect(readFileSync(join(out, 'snapshot-s1.raw')).equals(images.s1!)).toBe(true);
    expect(readFileSync(join(out, 'live.raw')).equals(images.s2!)).toBe(true);
    expect(readFileSync(join(out, 'newer-L000003-on-live.raw')).equals(images.live!)).toBe(true);
    const alone = readFileSync(join(out, 'layer-L000003.raw'));
    expect(alone.subarray(MiB + 512 * KiB, MiB + 612 * KiB).equals(images.live!.subarray(MiB + 512 * KiB, MiB + 612 * KiB))).toBe(true);
    expect(alone.subarray(0, MiB).every((b) => b === 0)).toBe(true);
    const j = report(out);
    expect(j.newerState.map((e: { file: string }) => e.file)).toEqual([expect.stringMatching(/^manifest\.[01]$/), 'L000003.data']);
  });

  it('a block failing its checksum and a cut data file: zeros there, listed by range, layer and reason; check points at salvage', async () => {
    const { vol, images, file } = await volume();
    // L000001 holds s1's blocks 1..5 in slots 0..4; damage slot 1 (block 2: bytes 128K-192K).
    flipByte(file('L000001.data'), BS + 100);
    // L000003 (live) holds blocks 24, 25 in slots 0, 1: cut it inside slot 1.
    truncateSync(file('L000003.data'), BS + 10);
    const check = await cli(['check', vol]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/L000001 block 2: checksum-mismatch/);
    expect(check.stdout).toContain(`stratadisk salvage ${vol} OUT`);
    const out = join(dir, 'out');
    const r = await cli(['salvage', vol, out]);
    expect(r.code, r.stderr).toBe(1);
    const j = report(out);
    const s1 = j.exported.find((e: { file: string }) => e.file === 'snapshot-s1.raw');
    expect(s1.zeroed).toEqual([{ offset: 2 * BS, length: BS, layer: 'L000001', reason: 'checksum mismatch (slot 1 of L000001.data)' }]);
    const s1raw = readFileSync(join(out, 'snapshot-s1.raw'));
    expect(s1raw.subarray(2 * BS, 3 * BS).every((b) => b === 0)).toBe(true);
    expect(s1raw.subarray(0, 2 * BS).equals(images.s1!.subarray(0, 2 * BS))).toBe(true);
    expect(s1raw.subarray(3 * BS).equals(images.s1!.subarray(3 * BS))).toBe(true);
    const live = j.exported.find((e: { file: string }) => e.file === 'live.raw');
    expect(live.zeroed).toEqual([
      { offset: 2 * BS, length: BS, layer: 'L000001', reason: 'checksum mismatch (slot 1 of L000001.data)' },
      { offset: 25 * BS, length: BS, layer: 'L000003', reason: 'L000003.data is cut short (slot 1 is past its end)' },
    ]);
    const liveRaw = readFileSync(join(out, 'live.raw'));
    expect(liveRaw.subarray(24 * BS, 25 * BS).equals(images.live!.subarray(24 * BS, 25 * BS))).toBe(true);
    expect(liveRaw.subarray(25 * BS, 26 * BS).every((b) => b === 0)).toBe(true);
    expect(r.stdout).toMatch(/bytes 131072-196607 \(64 KiB\) from L000001: checksum mismatch/);
  });

  it('a map log damaged in the middle: check cannot open it and points at salvage; salvage reads the later records and lists what the damage may have changed as uncertain', async () => {
    const { vol, images, file } = await volume();
    // Three more writes to the live layer, one map record each: blocks 28, 29 and 30.
    for (const [k, at] of [[4, 28], [5, 29], [6, 30]] as const) {
      const f = join(dir, `w${k}.bin`);
      writeFileSync(f, pattern(BS, k));
      await ok(['write', vol, '--offset', String(at * BS), f]);
    }
    const full = join(dir, 'full.img');
    await ok(['export', vol, full]);
    const want = readFileSync(full);
    // Damage the payload of the record that maps block 29 (the second to last record).
    const map = readFileSync(file('L000003.map'));
    const starts: number[] = [];
    for (let at = 0; at < map.length; at += 32 + map.readUInt32LE(at + 16)) starts.push(at);
    flipByte(file('L000003.map'), starts[starts.length - 2]! + 30);
    // check stops at the damage; it must point at salvage, not at itself
    const check = await cli(['check', vol]);
    expect(check.code).toBe(2);
    expect(check.stderr).toMatch(/^stratadisk: corrupt: Layer L000003 is damaged \(a record at byte \d+ is damaged but later records exist\)\. Run `stratadisk salvage .* OUT`/);
    expect(check.stderr).not.toContain('stratadisk check');
    const out = join(dir, 'out');
    const r = await cli(['salvage', vol, out]);
    expect(r.code, r.stderr).toBe(1);
    const j = report(out);
    expect(j.layers.find((l: { id: string }) => l.id === 'L000003').problems.join(' ')).toMatch(/lost records/);
    const live = j.exported.find((e: { file: string }) => e.file === 'live.raw');
    // Only block 30 (mapped after the damage) is certain in the live view.
    expect(live.uncertain).toEqual([
      { offset: 0, length: 30 * BS, layer: 'L000003', reason: 'records of its map log were lost, so this range may have changed there' },
      { offset: 31 * BS, length: 2 * MiB - 31 * BS, layer: 'L000003', reason: 'records of its map log were lost, so this range may have changed there' },
    ]);
    const raw = readFileSync(join(out, 'live.raw'));
    expect(raw.subarray(30 * BS, 31 * BS).equals(want.subarray(30 * BS, 31 * BS))).toBe(true);
    expect(raw.subarray(28 * BS, 29 * BS).equals(want.subarray(28 * BS, 29 * BS))).toBe(true);
    // block 29's entry was lost: it reads as the layer below had it (zeros here)
    expect(raw.subarray(29 * BS, 30 * BS).every((b) => b === 0)).toBe(true);
    // snapshots do not go through the damaged layer
    expect(readFileSync(join(out, 'snapshot-s2.raw')).equals(images.s2!)).toBe(true);
  });

  it('no readable manifest at all: each layer on its own', async () => {
    const { vol, images, file } = await volume();
    rmSync(file('manifest.0'));
    rmSync(file('manifest.1'));
    const out = join(dir, 'out');
    const r = await cli(['salvage', vol, out]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/No manifest slot is readable: each layer is exported on its own/);
    expect(readdirSync(out).filter((f) => f.endsWith('.raw')).sort()).toEqual(['layer-L000001.raw', 'layer-L000002.raw', 'layer-L000003.raw']);
    const l1 = readFileSync(join(out, 'layer-L000001.raw'));
    expect(l1.equals(images.s1!.subarray(0, l1.length))).toBe(true);
  });

  it('refuses a non-empty OUT or a file, and a missing volume, with exit 2', async () => {
    const { vol } = await volume();
    const busy = join(dir, 'busy');
    await ok(['salvage', vol, busy]);
    const r = await cli(['salvage', vol, busy]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not empty; give a new or empty directory/);
    const f = join(dir, 'a.bin');
    expect((await cli(['salvage', vol, f])).stderr).toMatch(/exists and is not a directory/);
    const none = await cli(['salvage', join(dir, 'nothing'), join(dir, 'o')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^stratadisk: not-found: /);
    const e = await cli(['salvage', mkdtempSync(join(dir, 'empty-')), join(dir, 'o3')]);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/Nothing to salvage/);
  });

  it('refuses while a writer has the volume open (blocks it rewrites would look damaged)', async () => {
    const { vol } = await volume();
    const writer = await Volume.open(new NodeDirNamespace(vol));
    try {
      const r = await cli(['salvage', vol, join(dir, 'out')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^stratadisk: locked: Salvage reads the volume while nothing writes to it/);
      expect(existsSync(join(dir, 'out'))).toBe(false);
    } finally {
      await writer.close();
    }
    await ok(['salvage', vol, join(dir, 'out')]);
  });

  it('Ctrl-C keeps the finished images, removes the unfinished one, and says so (exit 130)', async () => {
    const { vol, images } = await volume();
    const out = join(dir, 'out');
    const ac = new AbortController();
    // The progress bar draws once the first image's only batch is read: interrupt there.
    const r = await cli(['salvage', vol, out], { isTTY: true, signal: ac.signal, stderr: { write: (s: string) => (s.includes('salvage [') ? ac.abort() : (err += s)) } });
    expect(r.code).toBe(130);
    expect(err).toMatch(/salvage interrupted: kept 1 finished image\(s\): snapshot-s1\.raw in .*; not exported: snapshot-s2\.raw, live\.raw\. The report is .*salvage-report\.txt/);
    expect(readdirSync(out).sort()).toEqual(['salvage-report.json', 'salvage-report.txt', 'snapshot-s1.raw']);
    expect(readFileSync(join(out, 'snapshot-s1.raw')).equals(images.s1!)).toBe(true);
    const j = report(out);
    expect(j.complete).toBe(false);
    expect(j.notExported.map((n: { file: string }) => n.file)).toEqual(['snapshot-s2.raw', 'live.raw']);
    expect(readFileSync(join(out, 'salvage-report.txt'), 'utf8')).toMatch(/INCOMPLETE[^]*only 1 of 3 image\(s\) written/);
  });
});

let err = '';
beforeEach(() => {
  err = '';
});
