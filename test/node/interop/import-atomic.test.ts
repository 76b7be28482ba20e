/**
 * Issue 12, item 3: an import into an existing volume is atomic. One that fails part-way (a
 * compressed cluster that does not inflate, found only while copying) or is cancelled leaves
 * the snapshot list, every snapshot's content and the live view exactly as they were.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importQcow2 } from '../../../src/interop/qcow2/import.js';
import { cli, ok, pattern } from '../cli/harness.js';
import { haveQemu, qemuImg, qemuIo, qemuToRaw, sameRaw } from './fixtures/qemu.js';
import { dirDigest, volumeView } from './fixtures/volume-state.js';

const work = mkdtempSync(join(tmpdir(), 'stratadisk-import-atomic-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;
const path = (name: string) => join(work, `${seq++}-${name}`);

/** Overwrite `length` bytes of a file at `offset` with `byte`. */
function poke(file: string, offset: number, byte: number, length = 1): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(length, byte), 0, length, offset);
  closeSync(fd);
}

/** Does qemu read the 64 KiB at `guest` of `image` without an error? */
function qemuReads(image: string, guest: string): boolean {
  const r = spawnSync('qemu-io', ['-f', 'qcow2', '-c', `read ${guest} 64k`, image], { encoding: 'utf8' });
  return r.status === 0 && !/error|failed/i.test(r.stdout + r.stderr);
}

/**
 * The start of the last cluster of a freshly written image: where qemu put the deflate stream of
 * the compressed cluster written last (a compressed write starts a new host cluster).
 */
function lastCluster(image: string): number {
  return Math.floor((statSync(image).size - 1) / 65536) * 65536;
}

/**
 * The image: 24M, 0x41 over the first 3M, internal snapshot `one`, then a compressed
 * cluster of 0x55 at 12M whose deflate stream is broken by 0xff written at file offset 3670016.
 * Returns it and its good twin.
 */
function brokenImage(): { broken: string; good: string } {
  const good = path('good.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', good, '24M');
  qemuIo(good, 'write -P 0x41 0 3M');
  qemuImg('snapshot', '-c', 'one', good);
  qemuIo(good, 'write -c -P 0x55 12M 64k');
  const broken = path('s.qcow2');
  copyFileSync(good, broken);
  expect(lastCluster(good)).toBe(3670016);
  poke(broken, 3670016, 0xff);
  // qemu agrees: that cluster, and only that one, no longer reads.
  expect(qemuReads(good, '12M')).toBe(true);
  expect(qemuReads(broken, '12M')).toBe(false);
  expect(qemuReads(broken, '0')).toBe(true);
  return { broken, good };
}

/** `create E --size 24M`, data, `snapshot E keep`, more data on the live view. */
async function existingVolume(): Promise<string> {
  const vol = path('E');
  await ok(['create', vol, '--size', '24M']);
  const a = path('a.bin');
  writeFileSync(a, pattern(100_000, 1));
  await ok(['write', vol, '--offset', '1M', a]);
  await ok(['snapshot', vol, 'keep']);
  const b = path('b.bin');
  writeFileSync(b, pattern(70_000, 2));
  await ok(['write', vol, '--offset', '20M', b]);
  return vol;
}

describe.skipIf(!haveQemu())('atomic import into an existing volume', () => {
  it('the issue: a compressed cluster that does not inflate leaves snapshots, content and live view as they were', async () => {
    const { broken, good } = brokenImage();
    const vol = await existingVolume();
    const view = await volumeView(vol);
    const files = dirDigest(vol);
    const r = await cli(['import', vol, broken]);
    expect(r.code).toBe(2);
    expect(await ok(['snapshots', vol])).not.toMatch(/\bone\b/);
    expect(await volumeView(vol)).toEqual(view);
    expect(dirDigest(vol)).toEqual(files);
    expect(r.stderr).toMatch(/^stratadisk: corrupt: .*does not inflate.*Nothing was imported: .* is exactly as it was/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect((await cli(['check', vol])).code).toBe(0);

    // The good twin then imports: its snapshot joins `keep`, and the live view is the image.
    await ok(['import', vol, good]);
    const after = await volumeView(vol);
    expect(after.snapshots).toEqual(['keep', 'one']);
    expect(after.content.keep).toBe(view.content.keep);
    const ours = path('ours.raw');
    const theirs = path('theirs.raw');
    await ok(['export', vol, ours]);
    expect(qemuToRaw(good, theirs)).toBe(true);
    expect(sameRaw(ours, theirs)).toBe(true);
    await ok(['export', `${vol}@one`, ours]);
    expect(qemuToRaw(good, theirs, 'one')).toBe(true);
    expect(sameRaw(ours, theirs)).toBe(true);
  });

  it('a backing chain that fails in its top image leaves no snapshot of the lower images', async () => {
    const d = path('chain');
    mkdirSync(d);
    const base = join(d, 'base.qcow2');
    const top = join(d, 'top.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', base, '24M');
    qemuIo(base, 'write -P 0x11 0 2M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top);
    qemuIo(top, 'write -c -P 0x22 4M 64k');
    const vol = await existingVolume();
    const view = await volumeView(vol);
    const files = dirDigest(vol);
    // Garbage over the whole deflate stream of the top image's compressed cluster.
    const at = lastCluster(top);
    poke(top, at, 0xff, statSync(top).size - at);
    expect(qemuReads(top, '4M')).toBe(false);
    const r = await cli(['import', vol, top]);
    expect(r.code).toBe(2);
    expect((await volumeView(vol)).snapshots).toEqual(['keep']);
    expect(await volumeView(vol)).toEqual(view);
    expect(dirDigest(vol)).toEqual(files);
    expect(r.stderr).toMatch(/^stratadisk: corrupt: .*Nothing was imported/);
  });

  it('an import cancelled during the copy (API) leaves the volume as it was', async () => {
    const img = path('big.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', img, '24M');
    qemuIo(img, 'write -P 0x31 0 20M');
    qemuImg('snapshot', '-c', 'mid', img);
    qemuIo(img, 'write -P 0x32 4M 4M');
    const vol = await existingVolume();
    const view = await volumeView(vol);
    const files = dirDigest(vol);
    const ac = new AbortController();
    const err = await importQcow2(vol, img, { signal: ac.signal, onProgress: (p) => p.phase === 'copy' && ac.abort() }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('aborted');
    expect(await volumeView(vol)).toEqual(view);
    expect(dirDigest(vol)).toEqual(files);
  });
});

describe('atomic raw import into an existing volume', () => {
  it('a raw import replaces only the bytes it covers', async () => {
    const vol = await existingVolume();
    const before = path('before.raw');
    await ok(['export', vol, before]);
    const src = path('small.img');
    const data = pattern(3 * 65536 + 77, 9);
    writeFileSync(src, data);
    expect(await ok(['import', vol, src])).toMatch(/Imported/);
    const after = path('after.raw');
    await ok(['export', vol, after]);
    const want = readFileSync(before);
    want.set(data, 0);
    expect(Buffer.compare(readFileSync(after), want)).toBe(0);
    expect((await volumeView(vol)).snapshots).toEqual(['keep']);
    expect((await cli(['check', vol])).code).toBe(0);
  });

  it('Ctrl-C during a raw import leaves the live view as it was, and says so', async () => {
    const vol = await existingVolume();
    const view = await volumeView(vol);
    const src = path('raw.img');
    writeFileSync(src, pattern(20 << 20, 3));
    // Progress is drawn on a terminal only: pretend stderr is one and cancel at its first draw.
    const ac = new AbortController();
    let stderr = '';
    const r = await cli(['import', vol, src], {
      isTTY: true,
      signal: ac.signal,
      stderr: {
        write: (s: string) => {
          stderr += s;
          if (s.includes('import [')) ac.abort();
        },
      },
    });
    expect(stderr).toMatch(/import \[/);
    expect(r.code).toBe(130);
    expect(await volumeView(vol)).toEqual(view);
    expect(stderr).toMatch(/stratadisk: interrupted; nothing was imported: .* is exactly as it was/);
    expect(stderr).not.toMatch(/kept/);
  });
});
