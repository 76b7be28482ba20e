import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DirObjectStore } from '../../../src/transfer/dir-objects.js';
import { mountTmpfs } from '../helpers/tmpfs.js';
import { expectCode } from './fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'stratadisk-dir-objects-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;
const fresh = () => join(work, `s${seq++}`);
const enc = (s: string) => new TextEncoder().encode(s);

async function keys(s: DirObjectStore, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const o of s.list(prefix)) out.push(o.key);
  return out;
}

describe('DirObjectStore', () => {
  it('puts, gets (ranges), heads, lists in key order and deletes', async () => {
    const s = await DirObjectStore.open(fresh(), { create: true });
    expect(await s.put('a/b/c', enc('hello'))).toBe(true);
    await s.put('a-c', enc('x'));
    await s.put('a/b/d', enc('yy'));
    await s.put('a/b0', enc('z'));
    expect(new TextDecoder().decode((await s.get('a/b/c'))!)).toBe('hello');
    expect(new TextDecoder().decode((await s.get('a/b/c', { offset: 1, length: 3 }))!)).toBe('ell');
    expect((await s.get('a/b/c', { offset: 9, length: 3 }))!.length).toBe(0);
    expect(await s.get('a/nothing')).toBeNull();
    expect(await s.get('a-c/x')).toBeNull();
    expect(await s.head('a/b/d')).toMatchObject({ key: 'a/b/d', size: 2 });
    // string order ('-' < '/' < '0'), not directory-walk order
    expect(await keys(s)).toEqual(['a-c', 'a/b/c', 'a/b/d', 'a/b0']);
    expect(await keys(s, 'a/b/')).toEqual(['a/b/c', 'a/b/d']);
    expect(await keys(s, 'a/b')).toEqual(['a/b/c', 'a/b/d', 'a/b0']);
    expect(await s.put('a/b/c', enc('other'), { ifAbsent: true })).toBe(false);
    expect(new TextDecoder().decode((await s.get('a/b/c'))!)).toBe('hello');
    await s.delete(['a/b/c', 'a/none']);
    expect(await s.get('a/b/c')).toBeNull();
    await expectCode(s.put('../x', enc('no')), 'invalid-argument');
    await expectCode(s.get('a//b'), 'invalid-argument');
  });

  it('makes files 0600 and directories 0700, leaves no temporary files', async () => {
    const root = fresh();
    const s = await DirObjectStore.open(root, { create: true });
    await s.put('packs/x.pack', new Uint8Array(1000));
    expect(statSync(root).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'packs')).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'packs/x.pack')).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(root, 'packs'))).toEqual(['x.pack']);
  });

  it('never follows a symbolic link inside the store', async () => {
    const root = fresh();
    const s = await DirObjectStore.open(root, { create: true });
    const outside = join(work, `outside${seq++}`);
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret'), 'secret');
    symlinkSync(join(outside, 'secret'), join(root, 'file-link'));
    symlinkSync(outside, join(root, 'dir-link'));
    await expectCode(s.get('file-link'), 'unsafe-path');
    await expectCode(s.get('dir-link/secret'), 'unsafe-path');
    await expectCode(s.put('dir-link/new', enc('x')), 'unsafe-path');
    await expectCode(s.put('file-link', enc('x')), 'unsafe-path');
    expect(readdirSync(outside)).toEqual(['secret']);
    expect(await keys(s)).toEqual([]);
  });

  it('a missing directory is not-found unless create is asked for', async () => {
    await expectCode(DirObjectStore.open(fresh()), 'not-found');
  });
});

describe('DirObjectStore on a full disk (1 MiB tmpfs)', () => {
  it('refuses a put that does not fit with `quota`, leaves no temporary file, and keeps working', async (ctx) => {
    const m = mountTmpfs(1024 * 1024);
    if (typeof m === 'string') return ctx.skip(m);
    try {
      const s = await DirObjectStore.open(join(m.dir, 'objects'), { create: true });
      await s.put('small', enc('kept'));
      const big = new Uint8Array(2 * 1024 * 1024).fill(7);
      await expectCode(s.put('packs/big', big), 'quota');
      expect(await keys(s)).toEqual(['small']);
      expect(readdirSync(join(m.dir, 'objects', 'packs'))).toEqual([]);
      expect(new TextDecoder().decode((await s.get('small'))!)).toBe('kept');
      expect(await s.put('packs/fits', enc('yes'))).toBe(true);
    } finally {
      m.unmount();
    }
  });
});
