/**
 * CLI: `serve-store DIR` + `mirror SRC http://...` (token from a 0600 file, the URL with a
 * warning, or refused),
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
    const tokenFile = join(root, 'token');
    const server = startCli(['serve-store', served, '--token-file', tokenFile]);
    try {
      const [url, where] = (await server.firstLine()).split('\n');
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect(where).toBe(`token file: ${tokenFile}`);
      const token = readFileSync(tokenFile, 'utf8').trim();
      const base = url!;
      const wrong = join(root, 'wrong');
      writeFileSync(wrong, 'A'.repeat(43), { mode: 0o600 });
      const bad = await cli(['mirror', src, `${base}copy`, '--token-file', wrong]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('token');
      expect(await ok(['mirror', src, `${base}copy`, '--token-file', tokenFile])).toContain('Mirrored');
      const inUrl = await cli(['mirror', src, `${base}flat#token=${token}`, '--flatten']);
      expect(inUrl.stdout).toContain('(flattened)');
      expect(inUrl.stderr).toContain('warning');
      expect(inUrl.stderr).not.toContain(token);
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
