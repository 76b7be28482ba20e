/**
 * CLI: `serve-store DIR` + `mirror SRC http://...` (token from --token, the URL, or refused),
 * and `mirror SRC FILE --raw` (byte for byte; an existing file needs --force).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, ok, pattern, startCli, tempDir } from './harness.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function volume(): Promise<{ root: string; src: string; live: Buffer }> {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const src = join(t.dir, 'v');
  await ok(['create', src, '--size', '2M', '--block-size', '4K']);
  writeFileSync(join(t.dir, 'a.bin'), pattern(300_000, 1));
  await ok(['write', src, '--offset', '5000', join(t.dir, 'a.bin')]);
  await ok(['snapshot', src, 's1']);
  await ok(['write', src, '--offset', '1500000', join(t.dir, 'a.bin')]);
  await ok(['export', src, join(t.dir, 'live.raw')]);
  return { root: t.dir, src, live: readFileSync(join(t.dir, 'live.raw')) };
}

describe('mirror to a store server and to a raw image (CLI)', () => {
  it('serve-store + mirror SRC URL: the served directory holds the volume', async () => {
    const { root, src } = await volume();
    const served = join(root, 'served');
    mkdirSync(served);
    const server = startCli(['serve-store', served, '--token', 'tok']);
    try {
      const url = await server.firstLine();
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=tok$/);
      const base = url.split('#')[0]!;
      const bad = await cli(['mirror', src, `${base}copy`, '--token', 'nope']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('token');
      expect(await ok(['mirror', src, `${base}copy`, '--token', 'tok'])).toContain('Mirrored');
      expect(await ok(['mirror', src, `${base}flat#token=tok`, '--flatten'])).toContain('(flattened)');
    } finally {
      server.stop();
      await server.done;
    }
    expect(await ok(['compare', src, join(served, 'copy')])).toContain('Identical');
    expect(await ok(['compare', src, join(served, 'flat')])).toContain('Identical');
    expect(await ok(['snapshots', join(served, 'copy')])).toContain('s1');
    expect(await ok(['check', join(served, 'copy')])).toContain('OK');
  });

  it('mirror SRC FILE --raw writes the live view byte for byte; an existing file needs --force', async () => {
    const { root, src, live } = await volume();
    const img = join(root, 'img.raw');
    await ok(['mirror', src, img, '--raw']);
    expect(Buffer.compare(readFileSync(img), live)).toBe(0);
    writeFileSync(img, Buffer.alloc(3 << 20, 0xee));
    expect((await cli(['mirror', src, img, '--raw'])).code).toBe(2);
    await ok(['mirror', src, img, '--raw', '--force']);
    expect(Buffer.compare(readFileSync(img), live)).toBe(0);
  });
});
