/** `stratadisk create --backing URL`, `info`, `stream`, `reset` against a local HTTP server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startImageServer, type ImageServer } from '../../../src/bench/image-server.js';
import { cli, ok, pattern, tempDir, KiB } from './harness.js';

let srv: ImageServer;
const img = pattern(40 * 64 * KiB + 300, 5);
beforeAll(async () => {
  srv = await startImageServer(img);
});
afterAll(async () => {
  await srv.close();
});

describe('CLI: volumes on a remote image', () => {
  it('stream stops cleanly on Ctrl-C (exit 130), keeps what it fetched; a second stream finishes', async () => {
    const t = tempDir();
    const slow = await startImageServer(img, { delayMs: 15 });
    try {
      const dir = `${t.dir}/vol`;
      await ok(['create', dir, '--backing', slow.url, '--block-size', '16K']);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 150);
      const r = await cli(['stream', dir, '--rate', '2M'], { signal: ac.signal });
      expect(r.code).toBe(130);
      expect(r.stderr).toMatch(/interrupted/);
      const j = JSON.parse(await ok(['info', dir, '--json'])) as { remote: { localBytes: number } };
      expect(j.remote.localBytes).toBeGreaterThan(0);
      expect(j.remote.localBytes).toBeLessThan(img.length);
      const before = slow.bytes;
      expect(await ok(['stream', dir])).toMatch(/works offline/);
      expect(slow.bytes - before).toBe(img.length - j.remote.localBytes);
    } finally {
      await slow.close();
      t.cleanup();
    }
  });

  it('create --backing, info (local vs remote), stream, export, write, reset, reset --refresh', async () => {
    const t = tempDir();
    try {
      const dir = `${t.dir}/vol`;
      expect(await ok(['create', dir, '--backing', srv.url])).toMatch(/pinned by ETag "v1".*nothing fetched yet/);
      let info = await ok(['info', dir]);
      expect(info).toMatch(/local\s+0 B .*0 blocks fetched clean, 0 modified/);
      expect(info).toMatch(/remote\s+.*still on the server/);
      expect(await ok(['stream', dir, '--rate', '100M'])).toMatch(/works offline/);
      info = await ok(['info', dir, '--json']);
      const j = JSON.parse(info) as { remote: { remoteBytes: number; localBytes: number } };
      expect(j.remote).toMatchObject({ remoteBytes: 0, localBytes: img.length });
      await ok(['write', dir, '--offset', '0', '-'], { stdinBytes: new Uint8Array(4096).fill(0x41) });
      expect(await ok(['info', dir])).toMatch(/1 modified/);
      expect(await ok(['reset', dir])).toMatch(/Reset .* local/);
      expect(await ok(['info', dir])).toMatch(/0 modified/);
      const out = `${t.dir}/out.raw`;
      await ok(['export', dir, out]);
      const { readFileSync } = await import('node:fs');
      expect(Buffer.compare(readFileSync(out).subarray(0, img.length), Buffer.from(img))).toBe(0);
      srv.setImage(pattern(img.length, 6));
      expect(await ok(['reset', dir, '--refresh'])).toMatch(/new image version/);
      expect(await ok(['info', dir])).toMatch(/ETag "v2"/);
      const r = await cli(['stream', `${t.dir}/nope`]);
      expect(r.code).toBe(2);
      const plain = `${t.dir}/plain`;
      await ok(['create', plain, '--size', '1M']);
      const s = await cli(['stream', plain]);
      expect(s.code).toBe(2);
      expect(s.stderr).toMatch(/unsupported: This volume has no remote image/);
    } finally {
      t.cleanup();
    }
  });
});
