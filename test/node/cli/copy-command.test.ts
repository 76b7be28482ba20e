/**
 * Issue 14, item 3: `stratadisk copy SRC[@NAME] DST` from the command line: a new volume, a
 * volume holding the base (re-linked), --json, wrong destinations, and a real Ctrl-C (SIGINT to a
 * spawned CLI paused at its first progress bar by fixtures/at-progress.mjs) and SIGKILL.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { serveStore } from '../../../src/store/store-server.js';
import { dirDigest, volumeView } from '../interop/fixtures/volume-state.js';
import { cli, MiB, ok, pattern, tempDir } from './harness.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const HOOK = new URL('./fixtures/at-progress.mjs', import.meta.url).href;
const built = existsSync(BIN);

const { dir: work, cleanup } = tempDir();
afterAll(cleanup);
let seq = 0;
const path = (name: string) => join(work, `${seq++}-${name}`);

/** vm: base (`baseMiB` of data) <- s1 (1 MiB) <- s2 (1 MiB) <- live (1 MiB); and `golden`: the base alone. */
async function chain(baseMiB = 2): Promise<{ vm: string; golden: string }> {
  const vm = path('vm');
  const golden = path('golden');
  const f = path('data.bin');
  writeFileSync(f, pattern(baseMiB * MiB, 1));
  for (const v of [vm, golden]) {
    await ok(['create', v, '--size', '64M']);
    await ok(['write', v, '--offset', '0', f]);
    await ok(['snapshot', v, 'base']);
  }
  for (const [i, name] of ['s1', 's2', ''].entries()) {
    writeFileSync(f, pattern(MiB, 10 + i));
    await ok(['write', vm, '--offset', `${32 + 4 * i}M`, f]);
    if (name) await ok(['snapshot', vm, name]);
  }
  return { vm, golden };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `stratadisk ...argv` from dist/, stopped at its first `copy` progress bar containing `at`: SIGINT (pause) or SIGKILL (kill). */
function runStopped(argv: string[], mode: 'pause' | 'kill', at = ''): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', HOOK, BIN, ...argv], {
      env: { ...process.env, STRATADISK_TEST_AT_PROGRESS: mode, STRATADISK_TEST_AT_TEXT: at, STRATADISK_TEST_AT_LABEL: 'copy' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && stderr.includes('@@copy-started@@')) {
        sent = true;
        child.kill('SIGINT');
        child.stdin.write('x');
      }
    });
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe('stratadisk copy', () => {
  it('to a new directory, then a volume holding the base: re-linked, only the deltas move; --json', async () => {
    const { vm, golden } = await chain();
    const fresh = path('fresh');
    const out = await ok(['copy', vm, fresh]);
    expect(out).toContain(`Copied ${vm} to ${fresh} (a new volume): 4 layers, 0 re-linked, 4 copied; 5 MiB moved.`);
    expect(out).toContain('Snapshots: base, s1, s2.');
    expect(await volumeView(fresh)).toEqual(await volumeView(vm));

    const json = JSON.parse(await ok(['copy', `${vm}@s2`, golden, '--json']));
    expect(json).toMatchObject({ source: `${vm}@s2`, destination: golden, into: 'existing', reused: 1, copied: 2, bytesMoved: 2 * MiB, snapshots: ['base', 's1', 's2'] });
    const line = await ok(['copy', vm, golden]);
    expect(line).toContain('4 layers, 3 re-linked');
    expect(line).toContain('1 copied; 1 MiB moved.');
    expect(await volumeView(golden)).toEqual(await volumeView(vm));
  });

  it('--trust-reused re-links on content ID without reading the layer back: damage in it is then refused on read, never served', async () => {
    const flip = (dir: string) => {
      const f = join(dir, 'L000001.data');
      const b = readFileSync(f);
      b[100] = b[100]! ^ 0xff;
      writeFileSync(f, b);
    };
    const { vm, golden } = await chain(1);
    flip(golden);
    const trusted = JSON.parse(await ok(['copy', `${vm}@s1`, golden, '--trust-reused', '--json']));
    expect(trusted).toMatchObject({ reused: 1, copied: 1, rejected: [] });
    const read = await cli(['export', golden, path('out.img')]);
    expect(read.code).not.toBe(0);
    expect(read.stderr).toContain('checksum-mismatch');

    const { vm: vm2, golden: golden2 } = await chain(1);
    flip(golden2);
    // Read back first (the default), the damaged base is found and nothing is linked to it.
    const checked = await cli(['copy', `${vm2}@s1`, golden2, '--json']);
    expect(checked.code).toBe(2);
    expect(checked.stderr).toMatch(/snapshot named "base" on a layer with the right content ID whose data is damaged[^]*is unchanged/);
  });

  it('to and from a store server (serve-store namespaces), token from $STRATADISK_TOKEN, never printed', async () => {
    const { vm, golden } = await chain(1);
    const served = path('served');
    mkdirSync(served);
    const server = await serveStore(served);
    const before = process.env.STRATADISK_TOKEN;
    process.env.STRATADISK_TOKEN = server.token;
    try {
      const up = await cli(['copy', `${vm}@s1`, `${server.url}vm2`]);
      expect(up.code, up.stderr).toBe(0);
      expect(up.stdout).toContain(`Copied ${vm}@s1 to ${server.url}vm2 (a new volume): 2 layers, 0 re-linked, 2 copied`);
      const up2 = JSON.parse(await ok(['copy', vm, `${server.url}vm2`, '--json']));
      expect(up2).toMatchObject({ reused: 2, copied: 2 });
      const down = await cli(['copy', `${server.url}vm2@s2`, golden]);
      expect(down.code, down.stderr).toBe(0);
      expect(down.stdout).toContain('3 layers, 1 re-linked');
      expect((await volumeView(golden)).live).toBe((await volumeView(vm)).content.s2);
      expect(await volumeView(join(served, 'vm2'))).toEqual(await volumeView(vm));
      for (const r of [up, down]) expect(r.stdout + r.stderr).not.toContain(server.token);
    } finally {
      if (before === undefined) delete process.env.STRATADISK_TOKEN;
      else process.env.STRATADISK_TOKEN = before;
      await server.close();
    }
  });

  it('refuses a destination that is a file or a non-empty directory, and a missing source', async () => {
    const { vm } = await chain(1);
    const file = path('file');
    writeFileSync(file, 'x');
    expect(await cli(['copy', vm, file])).toMatchObject({ code: 2, stderr: expect.stringContaining('stratadisk: exists:') });
    const full = path('full');
    mkdirSync(full);
    writeFileSync(join(full, 'notes.txt'), 'x');
    expect(await cli(['copy', vm, full])).toMatchObject({ code: 2, stderr: expect.stringContaining('is not empty') });
    expect(await cli(['copy', path('nope'), path('dst')])).toMatchObject({ code: 2, stderr: expect.stringContaining('stratadisk: not-found:') });
  });

  describe.skipIf(!built)('interrupted (spawned CLI; needs dist/)', () => {
    it('Ctrl-C into a new directory: exit 130, the directory is gone and the message says so', async () => {
      const { vm } = await chain(3);
      const dst = path('dst');
      const r = await runStopped(['copy', vm, dst], 'pause');
      expect(r.stderr).toContain('@@copy-started@@');
      expect(r.code, r.stderr).toBe(130);
      expect(existsSync(dst)).toBe(false);
      expect(r.stderr).toContain('stratadisk: interrupted; nothing was created (the directories made for it were removed).');
    });

    it('Ctrl-C into a volume: exit 130, the volume is exactly as it was', async () => {
      const { vm, golden } = await chain(3);
      const view = await volumeView(golden);
      const files = dirDigest(golden);
      // the base is re-linked (its 3 MiB are read back to check them) before anything is copied
      const r = await runStopped(['copy', vm, golden], 'pause');
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toContain(`stratadisk: interrupted; the volume in ${golden} is unchanged.`);
      expect(await volumeView(golden)).toEqual(view);
      expect(dirDigest(golden)).toEqual(files);
    });

    it('SIGKILL once all data is copied, then the same copy again: finished layers are kept, the copy completes', async () => {
      const { vm } = await chain(3);
      const dst = path('dst');
      const r = await runStopped(['copy', vm, dst], 'kill', '100%');
      expect(r.signal).toBe('SIGKILL');
      expect(existsSync(join(dst, 'manifest.0'))).toBe(false); // nothing visible: no volume there
      const again = JSON.parse(await ok(['copy', vm, dst, '--json']));
      expect(again.resumed).toBeGreaterThanOrEqual(3);
      expect(again.resumed + again.copied).toBe(4);
      expect(await volumeView(dst)).toEqual(await volumeView(vm));
    });
  });
});
