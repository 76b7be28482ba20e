/**
 * The NBD server against the real clients: qemu-img, qemu-io, nbdcopy, nbdinfo. Loopback only.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveNbd, type NbdServer } from '../../../src/interop/nbd/index.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';
import { have, KiB, makeVolume, MiB, run, runOk, tempDir } from './nbd-helpers.js';

const tools = ['qemu-img', 'qemu-io', 'nbdcopy', 'nbdinfo'].filter((t) => !have(t));

async function reopen(dir: string): Promise<Volume> {
  return Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
}

describe.skipIf(tools.length > 0)('NBD server with qemu and libnbd tools', () => {
  const tmp = tempDir();
  const volDir = join(tmp.dir, 'vol');
  let expected: { live: Uint8Array; snap: Uint8Array };
  let server: NbdServer;
  const servers: NbdServer[] = [];

  beforeAll(async () => {
    expected = await makeVolume(volDir);
    server = await serveNbd({ dir: volDir }, { port: 0, insecure: true }); // TCP (the Unix socket case is below)
    servers.push(server);
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    tmp.cleanup();
  });

  it('qemu-img convert reads the volume byte for byte; qemu-img compare agrees', async () => {
    const out = join(tmp.dir, 'out.raw');
    await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', server.uri, out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(expected.live))).toBe(0);
    const ref = join(tmp.dir, 'ref.raw');
    writeFileSync(ref, expected.live);
    const r = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', server.uri, ref]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
  });

  it('nbdinfo --list shows the default export, the named volume and the snapshot', async () => {
    const out = await runOk('nbdinfo', ['--list', '--json', server.uri]);
    const j = JSON.parse(out) as { exports: { 'export-name': string; 'export-size': number; is_read_only: boolean }[] };
    const names = j.exports.map((e) => e['export-name']);
    expect(names).toEqual(['', 'vol', 's1']);
    expect(j.exports.every((e) => e['export-size'] === 8 * MiB)).toBe(true);
    expect(j.exports.find((e) => e['export-name'] === 's1')!.is_read_only).toBe(true);
    expect(j.exports.find((e) => e['export-name'] === '')!.is_read_only).toBe(false);
  });

  it('nbdinfo shows size, flags, block size and base:allocation', async () => {
    const j = JSON.parse(await runOk('nbdinfo', ['--json', server.uri])) as { exports: Record<string, unknown>[] };
    const e = j.exports[0]!;
    expect(e['export-size']).toBe(8 * MiB);
    expect(e['is_read_only']).toBe(false);
    expect(e['can_flush']).toBe(true);
    expect(e['can_fua']).toBe(true);
    expect(e['can_trim']).toBe(true);
    expect(e['can_zero']).toBe(true);
    expect(e['can_multi_conn']).toBe(true);
    expect(e['block_size_maximum']).toBe(32 * MiB);
    expect(e['contexts']).toContain('base:allocation');
  });

  it('nbdinfo --map matches Volume.map (data vs hole,zero)', async () => {
    const out = await runOk('nbdinfo', ['--map', '--json', server.uri]);
    const map = (JSON.parse(out) as { offset: number; length: number; type: number }[]).map(({ offset, length, type }) => ({ offset, length, type }));
    const v = await reopenShared(server);
    const ours: { offset: number; length: number; type: number }[] = [];
    for (const x of await v.map()) {
      const type = x.zero ? 3 : 0;
      const last = ours[ours.length - 1];
      if (last && last.type === type) last.length += x.length;
      else ours.push({ offset: x.start, length: x.length, type });
    }
    expect(map).toEqual(ours);
    expect(map.some((x) => x.type === 3)).toBe(true);
    expect(map.some((x) => x.type === 0)).toBe(true);
  });

  it('qemu-img map over NBD agrees on data vs zero', async () => {
    const out = await runOk('qemu-img', ['map', '-f', 'raw', '--output=json', server.uri]);
    const m = JSON.parse(out) as { start: number; length: number; data: boolean; zero: boolean }[];
    const v = await reopenShared(server);
    for (const x of await v.map()) {
      const covering = m.filter((q) => q.start < x.start + x.length && q.start + q.length > x.start);
      for (const q of covering) expect(q.data, `at ${x.start}`).toBe(!x.zero);
    }
  });

  it('a snapshot export is read-only, holds the snapshot, and refuses writes', async () => {
    const snapUri = `${server.uri}s1`;
    const info = JSON.parse(await runOk('nbdinfo', ['--json', snapUri])) as { exports: Record<string, unknown>[] };
    expect(info.exports[0]!['is_read_only']).toBe(true);
    const out = join(tmp.dir, 'snap.raw');
    await runOk('nbdcopy', [snapUri, out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(expected.snap))).toBe(0);
    const w = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x55 0 4k', snapUri]);
    expect(w.code !== 0 || /read.only|Permission|not permitted/i.test(w.stderr + w.stdout)).toBe(true);
  });

  it('writes through qemu-io (write -P, write -z, discard, flush) land in the volume', async () => {
    const uri = server.uri;
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 1536k 200k', '-c', 'write -z 0 64k', '-c', 'discard 5M 128k', '-c', 'write -P 0xcd 7M 4k', '-c', 'flush', uri]);
    const live = expected.live;
    live.fill(0xab, 1536 * KiB, 1736 * KiB);
    live.fill(0, 0, 64 * KiB);
    live.fill(0, 5 * MiB, 5 * MiB + 128 * KiB);
    live.fill(0xcd, 7 * MiB, 7 * MiB + 4 * KiB);
    const v = await reopenShared(server);
    expect(Buffer.compare(Buffer.from(await v.read(0, v.size)), Buffer.from(live))).toBe(0);
    // The zeroed and discarded ranges store no data.
    const m = await v.map(5 * MiB, 128 * KiB);
    expect(m.every((x) => x.zero && !x.data)).toBe(true);
  });

  it('nbdcopy writes a raw image into the volume; nbdcopy reads it back', async () => {
    const rng = new Rng(7);
    const img = new Uint8Array(8 * MiB);
    img.set(rng.bytes(2 * MiB), 1 * MiB);
    img.set(rng.bytes(64 * KiB), 6 * MiB + 4096);
    const src = join(tmp.dir, 'in.raw');
    writeFileSync(src, img);
    await runOk('nbdcopy', [src, server.uri]);
    const back = join(tmp.dir, 'back.raw');
    await runOk('nbdcopy', [server.uri, back]);
    expect(Buffer.compare(readFileSync(back), Buffer.from(img))).toBe(0);
    const v = await reopenShared(server);
    expect(Buffer.compare(Buffer.from(await v.read(0, v.size)), Buffer.from(img))).toBe(0);
    expected.live = img;
  });

  it('several clients at once: two nbdcopy readers and a qemu-io writer', async () => {
    const a = join(tmp.dir, 'p1.raw');
    const b = join(tmp.dir, 'p2.raw');
    const before = expected.live.slice();
    const [r1, r2, w] = await Promise.all([
      run('nbdcopy', [server.uri, a]),
      run('nbdcopy', ['--connections=2', server.uri, b]),
      run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 7M 512k', '-c', 'flush', server.uri]),
    ]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r2.code, r2.stderr).toBe(0);
    expect(w.code, w.stderr).toBe(0);
    // Readers saw a consistent disk outside the range being written.
    for (const f of [a, b]) {
      const got = readFileSync(f);
      expect(Buffer.compare(got.subarray(0, 7 * MiB), Buffer.from(before.subarray(0, 7 * MiB)))).toBe(0);
    }
    expected.live.fill(0x77, 7 * MiB, 7 * MiB + 512 * KiB);
    const v = await reopenShared(server);
    expect(Buffer.compare(Buffer.from(await v.read(7 * MiB, 512 * KiB)), Buffer.from(expected.live.subarray(7 * MiB, 7 * MiB + 512 * KiB)))).toBe(0);
  });

  it('a read-only server refuses writes; the volume is untouched', async () => {
    const ro = await serveNbd({ dir: join(tmp.dir, 'vol@s1') }).catch(() => undefined);
    expect(ro).toBeUndefined(); // DIR@NAME is the CLI's syntax; the API takes { dir, snapshot }
    const s = await serveNbd({ dir: volDir, snapshot: 's1' }, { port: 0, insecure: true });
    servers.push(s);
    const info = JSON.parse(await runOk('nbdinfo', ['--json', s.uri])) as { exports: Record<string, unknown>[] };
    expect(info.exports[0]!['is_read_only']).toBe(true);
    const out = join(tmp.dir, 'ro.raw');
    await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', s.uri, out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(expected.snap))).toBe(0);
  });

  it('clean shutdown flushes: reopened, the data is there and the volume checks clean', async () => {
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x42 2M 100k', server.uri]);
    expected.live.fill(0x42, 2 * MiB, 2 * MiB + 100 * KiB);
    await server.close();
    const v = await reopen(volDir);
    try {
      expect(Buffer.compare(Buffer.from(await v.read(0, v.size)), Buffer.from(expected.live))).toBe(0);
      expect((await v.check()).ok).toBe(true);
    } finally {
      await v.close();
    }
  });

  it('serves over a Unix socket', async () => {
    const sock = join(tmp.dir, 'nbd.sock');
    const s = await serveNbd({ dir: volDir }, { socket: sock, readOnly: true });
    servers.push(s);
    expect(s.uri).toBe(`nbd+unix:///?socket=${sock}`);
    const out = join(tmp.dir, 'unix.raw');
    await runOk('nbdcopy', [s.uri, out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(expected.live))).toBe(0);
    const info = JSON.parse(await runOk('nbdinfo', ['--json', s.uri])) as { exports: Record<string, unknown>[] };
    expect(info.exports[0]!['is_read_only']).toBe(true);
    await s.close();
  });
});

/** The server's own Volume: reads through it see every write the server completed. */
async function reopenShared(server: NbdServer): Promise<Volume> {
  return server.volume;
}
