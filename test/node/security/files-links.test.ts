/**
 * Issue 13, item 4: stores never follow symbolic links out of their directory. A link planted
 * in a namespace (as a store name, as the namespace's own directory, dangling or not) is refused
 * with `unsafe-path` for read, write, create and delete, is never listed, and nothing outside is
 * read, changed, created or removed. The store server serves node namespaces, so a token holder
 * cannot escape through `store/linkdir -> /outside` either (driven over HTTP here). `create`,
 * exports and raw targets never create files through a dangling link, nor write through another
 * user's link.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, lchown, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { lockDirectory } from '../../../src/store/node-dir-lock.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { NodeFileStore } from '../../../src/store/node-file.js';
import { RemoteNamespace } from '../../../src/store/remote.js';
import { serveStore, type StoreServer } from '../../../src/store/store-server.js';
import { cli, ok, tempDir } from '../cli/harness.js';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return isStrataError(e) ? e.code : `not a StrataError: ${String(e)}`;
  }
}

async function message(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return (e as Error).message;
  }
}

let t: ReturnType<typeof tempDir>;
let outside: string;
const SECRET = 'outside secret';
beforeEach(async () => {
  t = tempDir();
  outside = join(t.dir, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'secret'), SECRET);
});
afterEach(() => t.cleanup());

/** The outside directory holds exactly its secret, unchanged. */
async function outsideUntouched(): Promise<void> {
  expect(await readdir(outside)).toEqual(['secret']);
  expect(await readFile(join(outside, 'secret'), 'utf8')).toBe(SECRET);
}

describe('a link as a store name in a namespace', () => {
  it('a link to an outside file is refused for open (read, write, create), exists and delete, and is not listed', async () => {
    const dir = join(t.dir, 'ns');
    const ns = new NodeDirNamespace(dir, { create: true });
    await (await ns.open('real', { create: true })).close();
    await symlink(join(outside, 'secret'), join(dir, 'manifest.0'));
    expect(await code(ns.open('manifest.0', { readOnly: true }))).toBe('unsafe-path');
    expect(await code(ns.open('manifest.0'))).toBe('unsafe-path');
    expect(await code(ns.open('manifest.0', { create: true }))).toBe('unsafe-path');
    expect(await code(ns.exists('manifest.0'))).toBe('unsafe-path');
    expect(await code(ns.delete('manifest.0'))).toBe('unsafe-path');
    expect(await ns.list()).toEqual(['real']);
    expect(await message(ns.open('manifest.0'))).toMatch(/"manifest.0" in .*ns is a symbolic link; stores never follow links out of their directory/);
    // a read-only namespace refuses it too
    expect(await code(new NodeDirNamespace(dir, { readOnly: true }).open('manifest.0'))).toBe('unsafe-path');
    await outsideUntouched();
  });

  it('a dangling link is refused for create: nothing is created where it points', async () => {
    const dir = join(t.dir, 'ns');
    const ns = new NodeDirNamespace(dir, { create: true });
    await ns.list(); // creates the directory
    await symlink(join(outside, 'planted'), join(dir, 'L000001.data'));
    expect(await code(ns.open('L000001.data', { create: true }))).toBe('unsafe-path');
    expect(await code(ns.open('L000001.data'))).toBe('unsafe-path');
    expect(await code(ns.delete('L000001.data'))).toBe('unsafe-path');
    await outsideUntouched();
  });

  it('a link to an outside directory is refused', async () => {
    const dir = join(t.dir, 'ns');
    const ns = new NodeDirNamespace(dir, { create: true });
    await ns.list(); // creates the directory
    await symlink(outside, join(dir, 'sub'));
    expect(await code(ns.open('sub'))).toBe('unsafe-path');
    expect(await code(ns.delete('sub'))).toBe('unsafe-path');
    await outsideUntouched();
  });

  it('a volume whose manifest was replaced by a link does not open, and the link target is not written', async () => {
    const vol = join(t.dir, 'vol');
    await ok(['create', vol, '--size', '1M']);
    const { rm } = await import('node:fs/promises');
    await rm(join(vol, 'manifest.1'));
    await symlink(join(outside, 'secret'), join(vol, 'manifest.1'));
    const r = await cli(['write', vol, '-', '--offset', '0'], { stdinBytes: new Uint8Array(512).fill(0x41) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: unsafe-path: "manifest.1" in .* is a symbolic link/);
    await outsideUntouched();
  });

  it('a lock file planted as a link is refused, not read', async () => {
    const dir = join(t.dir, 'ns');
    await mkdir(dir);
    await symlink(join(outside, 'secret'), join(dir, '.stratadisk.lock'));
    expect(await code(lockDirectory(dir))).toBe('unsafe-path');
    await outsideUntouched();
  });
});

describe('a link as the namespace directory (an intermediate directory of the namespace path)', () => {
  it('is refused for list, open, create, exists, delete, sync and lock', async () => {
    const link = join(t.dir, 'linkdir');
    await symlink(outside, link);
    for (const ns of [new NodeDirNamespace(link), new NodeDirNamespace(link, { create: true }), new NodeDirNamespace(link, { readOnly: true })]) {
      expect(await code(ns.list())).toBe('unsafe-path');
      expect(await code(ns.open('secret', { readOnly: true }))).toBe('unsafe-path');
      expect(await code(ns.open('new', { create: true }))).toBe('unsafe-path');
      expect(await code(ns.exists('secret'))).toBe('unsafe-path');
      expect(await code(ns.sync())).toBe('unsafe-path');
      if (!ns.readOnly) {
        expect(await code(ns.delete('secret'))).toBe('unsafe-path');
        expect(await code(ns.lock())).toBe('unsafe-path');
      }
    }
    expect(await message(new NodeDirNamespace(link).list())).toMatch(/The directory .*linkdir is a symbolic link; stores never follow links/);
    // `linkdir/` and `linkdir/.` make the kernel resolve the link even under lstat and O_NOFOLLOW
    for (const spelled of [`${link}/`, `${link}/.`, `${link}//./`]) {
      expect({ spelled, code: await code(new NodeDirNamespace(spelled).list()) }).toEqual({ spelled, code: 'unsafe-path' });
      expect({ spelled, code: await code(new NodeDirNamespace(spelled, { create: true }).open('x', { create: true })) }).toEqual({ spelled, code: 'unsafe-path' });
    }
    await outsideUntouched();
  });

  it('a dangling link as the directory of a namespace to create: refused, nothing created where it points', async () => {
    const link = join(t.dir, 'linkdir');
    await symlink(join(outside, 'newdir'), link);
    const ns = new NodeDirNamespace(link, { create: true });
    expect(await code(ns.open('a', { create: true }))).toBe('unsafe-path');
    expect(await code(ns.list())).toBe('unsafe-path');
    await outsideUntouched();
  });

  it('a directory swapped for a link after the namespace first used it is refused from then on', async () => {
    const dir = join(t.dir, 'ns');
    const ns = new NodeDirNamespace(dir, { create: true });
    await (await ns.open('a', { create: true })).close();
    const { rename } = await import('node:fs/promises');
    await rename(dir, join(t.dir, 'moved'));
    await symlink(outside, dir);
    expect(await code(ns.list())).toBe('unsafe-path');
    expect(await code(ns.open('secret'))).toBe('unsafe-path');
    expect(await code(ns.open('b', { create: true }))).toBe('unsafe-path');
    expect(await code(ns.delete('secret'))).toBe('unsafe-path');
    await outsideUntouched();
  });
});

describe('the store server cannot be steered out of its directory (over HTTP)', () => {
  let server: StoreServer;
  let served: string;
  beforeEach(async () => {
    served = join(t.dir, 'store');
    await mkdir(served);
    await symlink(outside, join(served, 'linkdir')); // an intermediate directory of the namespace path
    await symlink(join(outside, 'secret'), join(served, 'secretlink')); // a final component
    await symlink(join(outside, 'planted'), join(served, 'dangling')); // a dangling final component
    server = await serveStore(served, { token: 'x'.repeat(32) });
  });
  afterEach(async () => {
    await server.close();
  });

  async function post(path: string, query: Record<string, string>, body?: Uint8Array): Promise<{ status: number; json: { code?: string; message?: string; names?: string[] } | undefined }> {
    const res = await fetch(`${server.url}${path}?${new URLSearchParams(query)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}` },
      ...(body ? { body: Buffer.from(body) } : {}),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text) as { code?: string };
    } catch {
      json = undefined;
    }
    return { status: res.status, json };
  }

  const readBody = () => {
    const b = new Uint8Array(12);
    new DataView(b.buffer).setUint32(8, 4, true); // 4 bytes at offset 0
    return b;
  };
  const writeBody = () => {
    const b = new Uint8Array(12 + 4);
    new DataView(b.buffer).setUint32(8, 4, true);
    b.set([0x41, 0x41, 0x41, 0x41], 12);
    return b;
  };

  it('through linkdir -> /outside: list, open, read, write, create, delete, lock are all refused with unsafe-path', async () => {
    const answers = {
      list: await post('linkdir', { op: 'list' }),
      exists: await post('linkdir', { op: 'exists', name: 'secret' }),
      open: await post('linkdir', { op: 'open', name: 'secret' }),
      read: await post('linkdir', { op: 'read', name: 'secret' }, readBody()),
      write: await post('linkdir', { op: 'write', name: 'secret' }, writeBody()),
      create: await post('linkdir', { op: 'open', name: 'new', create: '1' }),
      truncate: await post('linkdir', { op: 'truncate', name: 'secret', size: '0' }),
      delete: await post('linkdir', { op: 'delete', name: 'secret' }),
      lock: await post('linkdir', { op: 'lock' }),
    };
    for (const [op, a] of Object.entries(answers)) expect({ op, code: a.json?.code, status: a.status }).toEqual({ op, code: 'unsafe-path', status: 403 });
    await outsideUntouched();
  });

  it('a link as a store name at the top level: read, write, delete refused; a dangling one is not created through', async () => {
    const answers = {
      open: await post('', { op: 'open', name: 'secretlink' }),
      read: await post('', { op: 'read', name: 'secretlink' }, readBody()),
      write: await post('', { op: 'write', name: 'secretlink' }, writeBody()),
      delete: await post('', { op: 'delete', name: 'secretlink' }),
      exists: await post('', { op: 'exists', name: 'secretlink' }),
      createDangling: await post('', { op: 'open', name: 'dangling', create: '1' }),
      writeDangling: await post('', { op: 'write', name: 'dangling' }, writeBody()),
    };
    for (const [op, a] of Object.entries(answers)) expect({ op, code: a.json?.code }).toEqual({ op, code: 'unsafe-path' });
    const list = await post('', { op: 'list' });
    expect(list.json?.names).toEqual([]);
    await outsideUntouched();
    expect(existsSync(join(served, 'secretlink'))).toBe(true); // the link itself stays: not ours to remove
  });

  it('the store client (RemoteNamespace) gets unsafe-path, and plain subdirectories keep working', async () => {
    const remote = new RemoteNamespace(`${server.url}linkdir`, { token: server.token, retries: 0 });
    expect(await code(remote.list())).toBe('unsafe-path');
    expect(await code(remote.open('secret'))).toBe('unsafe-path');
    const fine = new RemoteNamespace(`${server.url}plain`, { token: server.token, retries: 0 });
    const s = await fine.open('a', { create: true });
    await s.write(0, new Uint8Array([1, 2, 3]));
    await s.close();
    expect(await fine.list()).toEqual(['a']);
    expect(readdirSync(join(served, 'plain'))).toEqual(['a']);
    await outsideUntouched();
  });
});

describe('create, exports and raw targets never write through a planted link', () => {
  it('create into a dangling link is refused and creates nothing where it points', async () => {
    const link = join(t.dir, 'vol');
    await symlink(join(outside, 'newvol'), link);
    const r = await cli(['create', link, '--size', '1M']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: unsafe-path: .*vol is a symbolic link \(to .*newvol\); a volume is created only in a real directory/);
    await outsideUntouched();
  });

  it('create into a link to an existing empty directory is refused and writes nothing there, however the path is spelled', async () => {
    const target = join(outside, 'emptydir');
    await mkdir(target);
    const link = join(t.dir, 'vol');
    await symlink(target, link);
    for (const spelled of [link, `${link}/`, `${link}/.`]) {
      const r = await cli(['create', spelled, '--size', '1M']);
      expect({ spelled, code: r.code, err: r.stderr }).toMatchObject({ spelled, code: 2, err: expect.stringMatching(/^stratadisk: unsafe-path:/) });
      const w = await cli(['info', spelled]);
      expect({ spelled, err: w.stderr }).toMatchObject({ spelled, err: expect.stringMatching(/^stratadisk: unsafe-path:/) });
    }
    expect(await readdir(target)).toEqual([]);
  });

  it('export and mirror --raw to a dangling link are refused; nothing is created where it points', async () => {
    const vol = join(t.dir, 'vol');
    await ok(['create', vol, '--size', '1M']);
    await symlink(join(outside, 'x.img'), join(t.dir, 'out.img'));
    await symlink(join(outside, 'y.img'), join(t.dir, 'raw.img'));
    const e = await cli(['export', vol, join(t.dir, 'out.img')]);
    expect(e.stderr).toMatch(/^stratadisk: unsafe-path: .*out.img is a symbolic link to .*x.img, which does not exist/);
    const m = await cli(['mirror', vol, join(t.dir, 'raw.img'), '--raw']);
    expect(m.stderr).toMatch(/^stratadisk: unsafe-path: .*raw.img is a symbolic link to .*y.img, which does not exist/);
    expect(await code(NodeFileStore.open(join(t.dir, 'raw.img'), { create: true }))).toBe('unsafe-path');
    await outsideUntouched();
  });

  it('export through your own link to an existing file replaces that file (the link stays)', async () => {
    const vol = join(t.dir, 'vol');
    await ok(['create', vol, '--size', '1M']);
    const real = join(t.dir, 'real.img');
    await writeFile(real, 'old');
    await symlink(real, join(t.dir, 'link.img'));
    await ok(['export', vol, join(t.dir, 'link.img')]);
    expect((await stat(real)).size).toBe(1 << 20);
  });

  it.skipIf(process.getuid?.() !== 0)('as root, export and mirror --raw through another user\'s link are refused', async () => {
    const vol = join(t.dir, 'vol');
    await ok(['create', vol, '--size', '1M']);
    await symlink(join(outside, 'secret'), join(t.dir, 'out.img'));
    await lchown(join(t.dir, 'out.img'), 64123, 64123);
    const e = await cli(['export', vol, join(t.dir, 'out.img')]);
    expect(e.stderr).toMatch(/^stratadisk: unsafe-path: .*out.img is a symbolic link owned by uid 64123 \(another user\)/);
    const m = await cli(['mirror', vol, join(t.dir, 'out.img'), '--raw', '--force']);
    expect(m.stderr).toMatch(/^stratadisk: unsafe-path: .*out.img is a symbolic link owned by uid 64123/);
    await outsideUntouched();
  });

  it('salvage into a link is refused', async () => {
    const vol = join(t.dir, 'vol');
    await ok(['create', vol, '--size', '1M']);
    await mkdir(join(outside, 'empty'));
    await symlink(join(outside, 'empty'), join(t.dir, 'out'));
    const r = await cli(['salvage', vol, join(t.dir, 'out')]);
    expect(r.stderr).toMatch(/^stratadisk: unsafe-path: .*out is a symbolic link/);
    expect(await readdir(join(outside, 'empty'))).toEqual([]);
  });
});

describe.skipIf(!otherUser)(`another local user plants links for root ${otherUserSkip ?? ''}`, () => {
  it('a dangling link planted in a shared directory: root\'s create and export refuse it and create nothing in the user\'s target', async () => {
    const shared = join(t.dir, 'shared');
    await mkdir(shared);
    await chmod(t.dir, 0o755);
    await chmod(shared, 0o777); // a directory both may write (not sticky, so the kernel's protected_symlinks does not apply)
    const theirs = join(t.dir, 'theirs');
    await mkdir(theirs);
    await chmod(theirs, 0o777);
    for (const [name, to] of [['vol', 'newvol'], ['out.img', 'out.img']]) {
      const r = await otherUser!.run('ln', ['-s', join(theirs, to), join(shared, name)]);
      expect(r.code).toBe(0);
    }
    const c = await cli(['create', join(shared, 'vol'), '--size', '1M']);
    expect(c.stderr).toMatch(/^stratadisk: unsafe-path:/);
    await ok(['create', join(t.dir, 'mine'), '--size', '1M']);
    const e = await cli(['export', join(t.dir, 'mine'), join(shared, 'out.img')]);
    expect(e.stderr).toMatch(/^stratadisk: unsafe-path:/);
    expect(await readdir(theirs)).toEqual([]);
    // the planted links are still there, and nothing else was created beside them
    expect(execFileSync('ls', ['-A', shared]).toString().trim().split('\n').sort()).toEqual(['out.img', 'vol']);
  });
});
