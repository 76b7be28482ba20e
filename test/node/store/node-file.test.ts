import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { constants as fsConstants, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeError, NodeFileStore, type NodeIoMode } from '../../../src/store/node-file.js';
import { alignedBytes } from '../../../src/wasm/aligned.js';
import { equalBytes, errorCode, pattern, storeConformance } from './conformance.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stratadisk-file-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
for (const io of ['sync', 'async'] as NodeIoMode[]) {
  storeConformance(`NodeFileStore (io: ${io})`, async () => {
    const path = join(root, `store-${io}-${counter++}`);
    return {
      open: () => NodeFileStore.open(path, { create: true, io }),
      reopen: () => NodeFileStore.open(path, { io }),
      openReadOnly: () => NodeFileStore.open(path, { readOnly: true, io }),
      cleanup: () => rm(path, { force: true }),
      largeOffsets: true,
    };
  });
}

describe('NodeFileStore specifics', () => {
  it('defaults to sync I/O for regular files and reports what it opened', async () => {
    const path = join(root, 'defaults');
    const s = await NodeFileStore.open(path, { create: true });
    try {
      expect(s.io).toBe('sync');
      expect(s.isBlockDevice).toBe(false);
      expect(s.resizable).toBe(true);
      expect(s.path).toBe(path);
    } finally {
      await s.close();
    }
  });

  it('opens an existing file with its size and contents', async () => {
    const path = join(root, 'existing');
    const data = pattern(12_345, 1);
    await writeFile(path, data);
    const s = await NodeFileStore.open(path);
    try {
      expect(s.size).toBe(12_345);
      equalBytes(await s.read(0, s.size), data, 'contents');
    } finally {
      await s.close();
    }
  });

  it('a missing file is not-found, with a hint to pass create', async () => {
    const e = await NodeFileStore.open(join(root, 'missing')).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'not-found' });
    expect((e as Error).message).toMatch(/create: true/);
    expect((e as Error).cause).toMatchObject({ code: 'ENOENT' });
    expect(await errorCode(NodeFileStore.open(join(root, 'no-dir', 'x'), { create: true }))).toBe('not-found');
  });

  it('a directory is refused with a clear error', async () => {
    const dir = join(root, 'a-dir');
    await mkdir(dir);
    expect(await errorCode(NodeFileStore.open(dir))).toBe('unsupported');
    expect(await errorCode(NodeFileStore.open(dir, { readOnly: true }))).toBe('unsupported');
  });

  it.skipIf(process.platform === 'win32')('a FIFO is refused at once instead of blocking in open()', async () => {
    const fifo = join(root, 'a-fifo');
    execFileSync('mkfifo', [fifo]);
    expect(await errorCode(NodeFileStore.open(fifo, { readOnly: true }))).toBe('unsupported');
  });

  it('create + readOnly makes an empty read-only store', async () => {
    const path = join(root, 'ro-created');
    const s = await NodeFileStore.open(path, { create: true, readOnly: true });
    try {
      expect(s.size).toBe(0);
      expect(await errorCode(s.write(0, new Uint8Array(1)))).toBe('read-only');
    } finally {
      await s.close();
    }
    expect((await stat(path)).isFile()).toBe(true);
  });

  it.skipIf(process.getuid?.() === 0)('a file without write permission opened writable is read-only (skipped as root: root bypasses modes)', async () => {
    const path = join(root, 'no-write');
    await writeFile(path, new Uint8Array(10));
    await chmod(path, 0o444);
    expect(await errorCode(NodeFileStore.open(path))).toBe('read-only');
  });

  it('a file shortened behind its back gives io, not a hang or garbage', async () => {
    const path = join(root, 'shrunk');
    await writeFile(path, new Uint8Array(8192));
    const s = await NodeFileStore.open(path);
    try {
      await writeFile(path, new Uint8Array(100));
      expect(await errorCode(s.read(4096, 4096))).toBe('io');
    } finally {
      await s.close();
    }
  });

  it('large transfers (above the sync threshold) work in sync mode', async () => {
    const s = await NodeFileStore.open(join(root, 'large'), { create: true, io: 'sync' });
    try {
      const data = pattern(3 * 2 ** 20 + 17, 2);
      await s.write(11, data);
      equalBytes(await s.read(11, data.length), data, 'contents');
    } finally {
      await s.close();
    }
  });

  it('large writes from page-aligned memory bypass the page cache and stay coherent with cached reads', async () => {
    const path = join(root, 'direct');
    const s = await NodeFileStore.open(path, { create: true });
    try {
      // Cached first (a buffered write and a read), then overwritten directly: reads see the new bytes.
      await s.write(0, pattern(4 << 20, 1));
      equalBytes(await s.read(0, 4 << 20), pattern(4 << 20, 1), 'buffered');
      const big = alignedBytes(3 << 20);
      big.set(pattern(3 << 20, 7));
      await s.write(1 << 20, big); // overwrite, partly past the cached part's end
      await s.write(8 << 20, big.subarray(1 << 20)); // extending, 2 MiB, page-aligned subarray
      await s.write((12 << 20) + 512, big.subarray(0, 2 << 20)); // unaligned offset: buffered
      await s.write(16 << 20, big.subarray(512, (1 << 20) + 512)); // unaligned memory: buffered
      expect(s.size).toBe(17 << 20);
      const want = new Uint8Array(17 << 20);
      want.set(pattern(4 << 20, 1));
      want.set(big, 1 << 20);
      want.set(big.subarray(1 << 20), 8 << 20);
      want.set(big.subarray(0, 2 << 20), (12 << 20) + 512);
      want.set(big.subarray(512, (1 << 20) + 512), 16 << 20);
      equalBytes(await s.read(0, want.length), want, 'after direct writes');
      await s.flush();
      if (process.platform === 'linux') {
        // The direct writes went through a second, O_DIRECT descriptor of the same file.
        const flags = readdirSync('/proc/self/fd').flatMap((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`) === path ? [parseInt(/flags:\s*([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!, 8)] : [];
          } catch {
            return [];
          }
        });
        expect(flags.some((f) => (f & fsConstants.O_DIRECT) !== 0)).toBe(true);
      }
    } finally {
      await s.close();
    }
    const again = await NodeFileStore.open(path, { readOnly: true });
    try {
      equalBytes(await again.read(1 << 20, 3 << 20), pattern(3 << 20, 7), 'reopened');
    } finally {
      await again.close();
    }
  });

  it('maps Node error codes to StrataError codes and keeps the cause', () => {
    const cases: [string, boolean, string][] = [
      ['ENOENT', false, 'not-found'],
      ['EEXIST', true, 'exists'],
      ['EROFS', true, 'read-only'],
      ['EACCES', true, 'read-only'],
      ['EPERM', true, 'read-only'],
      ['EACCES', false, 'io'],
      ['ENOSPC', true, 'quota'],
      ['EDQUOT', true, 'quota'],
      ['EIO', true, 'io'],
      ['EBUSY', true, 'locked'],
    ];
    for (const [code, writing, expected] of cases) {
      const cause = Object.assign(new Error(`${code}: boom`), { code });
      const e = nodeError(cause, 'do the thing', writing);
      expect(e.code, code).toBe(expected);
      expect(e.cause).toBe(cause);
      expect(e.message).toMatch(/^Cannot do the thing/);
    }
  });
});
