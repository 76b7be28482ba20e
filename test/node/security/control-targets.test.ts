/**
 * Mirror targets prepared by another user (src/jobs/target-check.ts), through the CLI in this
 * process (root in CI): a directory of theirs, a symbolic link of theirs to a file of ours, a
 * raw image file of theirs: refused, and the file they point to unchanged.
 */
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkMirrorTarget } from '../../../src/jobs/target-check.js';
import { cli, ok } from '../cli/harness.js';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';

const posix = process.platform !== 'win32';

describe.skipIf(!posix)('mirror targets', () => {
  let base = '';
  let vol = '';
  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sd-targets-'));
    vol = join(base, 'vol');
    await ok(['create', vol, '--size', '256K', '--block-size', '4K']);
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('a new target is created 0700; an empty directory of ours is accepted', async () => {
    const fresh = join(base, 'fresh', 'copy');
    await checkMirrorTarget(fresh, { create: true });
    expect(readdirSync(fresh)).toEqual([]);
    const { statSync } = await import('node:fs');
    expect(statSync(fresh).mode & 0o777).toBe(0o700);
    const r = await cli(['mirror', vol, join(base, 'copy2')]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('a target holding a subdirectory or a symbolic link is refused by name', async () => {
    const t = join(base, 'sub');
    mkdirSync(join(t, 'L000000.data'), { recursive: true, mode: 0o700 });
    chmodSync(t, 0o700);
    await expect(checkMirrorTarget(t)).rejects.toMatchObject({ code: 'invalid-argument', message: `The target ${t} holds "L000000.data", a directory; a target holds only regular files. Remove it, or mirror into a new path.` });
    const l = join(base, 'link');
    symlinkSync(t, l);
    await expect(checkMirrorTarget(l, { create: true })).rejects.toMatchObject({ code: 'invalid-argument', message: `The target ${l} is a symbolic link, not a directory; give a real directory (or a new path).` });
  });

  describe.skipIf(!otherUser)(`prepared by another user ${otherUserSkip ?? ''}`, () => {
    it("an empty directory of theirs is refused (they would read the copy)", async () => {
      const theirs = join(base, 'theirs');
      mkdirSync(theirs, { mode: 0o755 });
      chownSync(theirs, otherUser!.uid, otherUser!.gid);
      const r = await cli(['mirror', vol, theirs]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`stratadisk: permission-denied: The target ${theirs} belongs to another user; mirror into a directory of the user the server runs as, or a new path.\n`);
      expect(readdirSync(theirs)).toEqual([]);
    });

    it('a raw image path that is their symbolic link to our file is refused; our file is unchanged', async () => {
      const victim = join(base, 'victim.txt');
      writeFileSync(victim, 'precious', { mode: 0o600 });
      const link = join(base, 'image.raw');
      symlinkSync(victim, link);
      lchownSync(link, otherUser!.uid, otherUser!.gid);
      const r = await cli(['mirror', vol, link, '--raw', '--force']);
      expect(readFileSync(victim, 'utf8')).toBe('precious');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`stratadisk: unsafe-path: ${link} is a symbolic link owned by uid ${otherUser!.uid} (another user)`);
    });

    it('a raw image file of theirs is refused (they would read the image)', async () => {
      const file = join(base, 'their.raw');
      writeFileSync(file, 'theirs');
      chownSync(file, otherUser!.uid, otherUser!.gid);
      const r = await cli(['mirror', vol, file, '--raw', '--force']);
      expect(readFileSync(file, 'utf8')).toBe('theirs');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`stratadisk: permission-denied: The target ${file} is a file of another user`);
    });
  });
});
