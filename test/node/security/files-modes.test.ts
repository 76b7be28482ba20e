/**
 * Issue 13, item 3: volume files are private. Everything stratadisk creates on Node that holds
 * guest data (volume directories and files, job journals, exports, mirrors, salvaged images,
 * shadow diff areas, v86 machine states) is 0600 / 0700 whatever the umask: these tests run with
 * umask 000 (vitest's `forks` pool runs each test file in a child process of its own, so the
 * umask is this process's alone), where anything left to the umask would come out 0666/0777.
 * The override for shared setups is `create --mode 0640|0660` (the directory carries it to every
 * later file); a rewritten file keeps its mode (and, for root, its owner).
 */
import { chmod, chown, lstat, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { NodeFileStore } from '../../../src/store/node-file.js';
import { fileModeIn, dirModeFor, parseFileMode } from '../../../src/store/node-modes.js';
import { NamespaceStateStore } from '../../../src/v86/state-store.js';
import { cli, ok, pattern, tempDir, KiB } from '../cli/harness.js';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';

/** Every entry under `root` (itself included) with its permission bits, as `relative path: mode` in octal. */
async function modes(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (p: string, rel: string) => {
    const st = await lstat(p);
    out[rel] = (st.mode & 0o7777).toString(8).padStart(4, '0');
    if (st.isDirectory()) for (const n of await readdir(p)) await walk(join(p, n), rel === '.' ? n : `${rel}/${n}`);
  };
  await walk(root, '.');
  return out;
}

/** The entries whose mode is not the expected one for their kind (an empty object when all are). */
async function wrongModes(root: string, file: number, dir: number): Promise<Record<string, string>> {
  const wrong: Record<string, string> = {};
  for (const [rel, m] of Object.entries(await modes(root))) {
    const st = await lstat(rel === '.' ? root : join(root, rel));
    const want = st.isDirectory() ? dir : file;
    if (parseInt(m, 8) !== want) wrong[rel] = m;
  }
  return wrong;
}

let saved: number;
beforeAll(() => {
  saved = process.umask(0o000);
});
afterAll(() => {
  process.umask(saved);
});

describe('what stratadisk creates is private, whatever the umask (umask 000)', () => {
  it('create, write, snapshot, export (raw, qcow2), mirror (directory, raw), import, salvage: files 0600, directories 0700', async () => {
    const t = tempDir();
    try {
      const vol = join(t.dir, 'vol');
      const data = join(t.dir, 'data.bin');
      await writeFile(data, pattern(200 * KiB, 3), { mode: 0o644 });
      await ok(['create', vol, '--size', '1M', '--block-size', '64K']);
      await ok(['write', vol, data, '--offset', '0']);
      await ok(['snapshot', vol, 's1']);
      await ok(['write', vol, data, '--offset', '64K']);
      await ok(['export', vol, join(t.dir, 'out.img')]);
      await ok(['export', vol, join(t.dir, 'out.qcow2'), '--format', 'qcow2']);
      await ok(['mirror', vol, join(t.dir, 'copy')]);
      await ok(['mirror', vol, join(t.dir, 'copy.raw'), '--raw']);
      await ok(['import', join(t.dir, 'imported'), join(t.dir, 'out.qcow2')]);
      await ok(['salvage', vol, join(t.dir, 'salvaged')]);
      // a created volume directory holds what the tests above expect
      expect(Object.keys(await modes(vol)).sort()).toEqual(expect.arrayContaining(['.', 'L000001.data', 'L000002.data', 'jobs.0', 'manifest.0']));
      for (const d of ['vol', 'copy', 'imported', 'salvaged']) expect({ [d]: await wrongModes(join(t.dir, d), 0o600, 0o700) }).toEqual({ [d]: {} });
      for (const f of ['out.img', 'out.qcow2', 'copy.raw']) expect({ [f]: ((await stat(join(t.dir, f))).mode & 0o7777).toString(8) }).toEqual({ [f]: '600' });
    } finally {
      t.cleanup();
    }
  });

  it('shadow copies: the diff-area directory 0700 and its files 0600; a shadow export 0600', async () => {
    const t = tempDir();
    try {
      const img = join(t.dir, 'disk.img');
      await writeFile(img, pattern(256 * KiB, 5), { mode: 0o600 });
      await ok(['shadow', 'create', img, '--name', 'a']);
      await writeFile(join(t.dir, 'in.bin'), pattern(64 * KiB, 6));
      await ok(['shadow', 'write', img, join(t.dir, 'in.bin'), '--offset', '0']); // preserves a block in the diff area
      await ok(['shadow', 'export', img, 'a', join(t.dir, 'a.img')]);
      expect(await wrongModes(`${img}.shadows`, 0o600, 0o700)).toEqual({});
      expect(((await stat(join(t.dir, 'a.img'))).mode & 0o7777).toString(8)).toBe('600');
    } finally {
      t.cleanup();
    }
  });

  it('the API: a namespace created by NodeDirNamespace, its stores, v86 machine states', async () => {
    const t = tempDir();
    try {
      const ns = new NodeDirNamespace(join(t.dir, 'a', 'b'), { create: true });
      await (await ns.open('one', { create: true })).close();
      await new NamespaceStateStore(ns).put('boot', pattern(100, 1));
      const raw = await NodeFileStore.open(join(t.dir, 'raw.img'), { create: true });
      await raw.close();
      expect(await wrongModes(join(t.dir, 'a', 'b'), 0o600, 0o700)).toEqual({});
      expect(((await stat(join(t.dir, 'a'))).mode & 0o777).toString(8)).toBe('700');
      expect(((await stat(join(t.dir, 'raw.img'))).mode & 0o777).toString(8)).toBe('600');
    } finally {
      t.cleanup();
    }
  });

  it('create into an existing empty directory (mkdir with a loose umask) makes it 0700', async () => {
    const t = tempDir();
    try {
      const vol = join(t.dir, 'vol');
      await mkdir(vol, { mode: 0o755 });
      await ok(['create', vol, '--size', '1M']);
      expect(await wrongModes(vol, 0o600, 0o700)).toEqual({});
    } finally {
      t.cleanup();
    }
  });
});

describe('the override for shared setups: create --mode', () => {
  it('--mode 0640 gives the directory 0750 and every file 0640, including files later commands add', async () => {
    const t = tempDir();
    try {
      const vol = join(t.dir, 'vol');
      await ok(['create', vol, '--size', '1M', '--mode', '0640']);
      await ok(['snapshot', vol, 's1']);
      await ok(['write', vol, '-', '--offset', '0'], { stdinBytes: pattern(70 * KiB, 9) });
      await ok(['snapshot', vol, 's2']);
      expect(await wrongModes(vol, 0o640, 0o750)).toEqual({});
      expect((await readdir(vol)).filter((n) => n.endsWith('.data')).length).toBe(3);
    } finally {
      t.cleanup();
    }
  });

  it('--mode 0660 gives 0770 / 0660; modes for others are refused', async () => {
    const t = tempDir();
    try {
      const vol = join(t.dir, 'vol');
      await ok(['create', vol, '--size', '1M', '--mode', '660']);
      expect(await wrongModes(vol, 0o660, 0o770)).toEqual({});
      for (const bad of ['0644', '0666', '0400', '0700', 'rw', '06400']) {
        const r = await cli(['create', join(t.dir, `bad-${bad}`), '--size', '1M', '--mode', bad]);
        expect({ bad, code: r.code, err: r.stderr }).toMatchObject({ bad, code: 2, err: expect.stringMatching(/^stratadisk: invalid-argument: --mode .* is not allowed/) });
      }
      expect((await readdir(t.dir)).sort()).toEqual(['vol']);
    } finally {
      t.cleanup();
    }
  });

  it('a file created in a directory shared with its group only gets the group\'s read/write bits; elsewhere 0600; never any for others', () => {
    expect(fileModeIn(0o700)).toBe(0o600);
    expect(fileModeIn(0o750)).toBe(0o640);
    expect(fileModeIn(0o770)).toBe(0o660);
    expect(fileModeIn(0o2770)).toBe(0o660);
    // what a default umask makes (022, 002) is no decision to share: private
    expect(fileModeIn(0o755)).toBe(0o600);
    expect(fileModeIn(0o775)).toBe(0o600);
    expect(fileModeIn(0o777)).toBe(0o600);
    expect(fileModeIn(0o701)).toBe(0o600);
    expect(dirModeFor(0o600)).toBe(0o700);
    expect(dirModeFor(0o640)).toBe(0o750);
    expect(dirModeFor(0o660)).toBe(0o770);
    expect(parseFileMode('0o640')).toBe(0o640);
  });
});

describe('files added to an existing directory', () => {
  it('mirror and the API into directories made by a default umask (0755, 0775) give 0600 files; into a 0750 one, 0640', async () => {
    const t = tempDir();
    try {
      const vol = join(t.dir, 'vol');
      await ok(['create', vol, '--size', '1M']);
      for (const [name, mode, want] of [['m755', 0o755, 0o600], ['m775', 0o775, 0o600], ['m750', 0o750, 0o640], ['m770', 0o770, 0o660]] as const) {
        for (const how of ['mirror', 'api'] as const) {
          const d = join(t.dir, `${how}-${name}`);
          await mkdir(d);
          await chmod(d, mode);
          if (how === 'mirror') await ok(['mirror', vol, d]);
          else await (await new NodeDirNamespace(d).open('a', { create: true })).close();
          expect({ d, wrong: await wrongModes(d, want, mode) }).toEqual({ d, wrong: {} });
        }
      }
    } finally {
      t.cleanup();
    }
  });
});

describe('a rewritten file keeps its mode', () => {
  it('export over an existing 0640 file leaves it 0640 (and 0604, 0644 as they were); a new one is 0600', async () => {
    const t = tempDir();
    try {
      const vol = join(t.dir, 'vol');
      await ok(['create', vol, '--size', '1M']);
      for (const [name, mode] of [['a.img', 0o640], ['b.img', 0o644], ['c.img', 0o604]] as const) {
        const out = join(t.dir, name);
        await writeFile(out, 'old content');
        await chmod(out, mode);
        await ok(['export', vol, out]);
        const st = await stat(out);
        expect({ name, mode: (st.mode & 0o7777).toString(8), size: st.size }).toEqual({ name, mode: mode.toString(8), size: 1 << 20 });
      }
      await ok(['export', vol, join(t.dir, 'qcow.img'), '--format', 'qcow2']);
      await chmod(join(t.dir, 'qcow.img'), 0o640);
      await ok(['export', vol, join(t.dir, 'qcow.img'), '--format', 'qcow2']);
      expect(((await stat(join(t.dir, 'qcow.img'))).mode & 0o7777).toString(8)).toBe('640');
    } finally {
      t.cleanup();
    }
  });

  it.skipIf(process.getuid?.() !== 0)('root exporting over another user\'s file keeps that user as its owner and group', async () => {
    const t = tempDir();
    try {
      const vol = join(t.dir, 'vol');
      await ok(['create', vol, '--size', '1M']);
      const out = join(t.dir, 'theirs.img');
      await writeFile(out, 'old');
      await chown(out, 64124, 64125);
      await chmod(out, 0o640);
      await ok(['export', vol, out]);
      const st = await stat(out);
      expect({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) }).toEqual({ uid: 64124, gid: 64125, mode: '640' });
    } finally {
      t.cleanup();
    }
  });
});

describe.skipIf(!otherUser)(`a second local user cannot read a volume ${otherUserSkip ?? ''}`, () => {
  it('neither through a reachable directory made with a loose umask, nor file by file when the directory is opened up', async () => {
    const t = tempDir();
    try {
      await chmod(t.dir, 0o755); // the attacker can reach the volume's parent
      const vol = join(t.dir, 'vol');
      await mkdir(vol, { mode: 0o755 }); // as `mkdir vol` with umask 022 would
      await ok(['create', vol, '--size', '1M']);
      await ok(['write', vol, '-', '--offset', '0'], { stdinBytes: new TextEncoder().encode('guest secret') });
      const ls = await otherUser!.run('ls', [vol]);
      expect(ls.code).not.toBe(0);
      expect(ls.stderr).toMatch(/Permission denied/);
      // even with the directory opened up by hand, the files are the owner's alone
      await chmod(vol, 0o711);
      for (const f of ['manifest.0', 'manifest.1', 'L000001.data', 'L000001.map']) {
        const cat = await otherUser!.run('cat', [join(vol, f)]);
        expect({ f, code: cat.code === 0 ? 0 : 'refused', err: cat.stderr }).toMatchObject({ f, code: 'refused', err: expect.stringMatching(/Permission denied/) });
      }
    } finally {
      t.cleanup();
    }
  });
});
