/**
 * Issue 12, item 6 (import): Ctrl-C during an import, sent as a real SIGINT to a spawned CLI while
 * the copy is under way, and a crash (SIGKILL) at the same point. The message says exactly what
 * is left; an existing volume is exactly as it was; a volume the import created is gone.
 *
 * The child is paused at its first progress bar by a preload (fixtures/at-progress.mjs), so the
 * signal always lands during the copy, however loaded the machine is.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { haveQemu, qemuImg, qemuIo } from '../interop/fixtures/qemu.js';
import { dirDigest, volumeView } from '../interop/fixtures/volume-state.js';
import { ok, pattern } from './harness.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const HOOK = new URL('./fixtures/at-progress.mjs', import.meta.url).href;
const built = existsSync(BIN);

const work = mkdtempSync(join(tmpdir(), 'stratadisk-import-interrupt-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;
const path = (name: string) => join(work, `${seq++}-${name}`);

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `stratadisk ...argv` from dist/. `pause`: at the first progress bar (containing `at`), send
 * SIGINT (as Ctrl-C does) and let it continue. `kill`: it kills itself with SIGKILL there.
 */
function runStopped(argv: string[], mode: 'pause' | 'kill', at = ''): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', HOOK, BIN, ...argv], {
      env: { ...process.env, STRATADISK_TEST_AT_PROGRESS: mode, STRATADISK_TEST_AT_TEXT: at },
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

/** A qcow2 image with 40 MiB of data (more than one 32 MiB copy batch) and an internal snapshot. */
function bigImage(): string {
  const img = path('big.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', img, '48M');
  qemuIo(img, 'write -P 0x31 0 24M');
  qemuImg('snapshot', '-c', 'mid', img);
  qemuIo(img, 'write -P 0x32 24M 16M');
  return img;
}

/** A 48M volume with a snapshot `keep` and live changes on top. */
async function existingVolume(): Promise<string> {
  const vol = path('vol');
  await ok(['create', vol, '--size', '48M']);
  const a = path('a.bin');
  writeFileSync(a, pattern(300_000, 1));
  await ok(['write', vol, '--offset', '1M', a]);
  await ok(['snapshot', vol, 'keep']);
  writeFileSync(a, pattern(200_000, 2));
  await ok(['write', vol, '--offset', '30M', a]);
  return vol;
}

describe.skipIf(!built || !haveQemu())('Ctrl-C and crashes during import (spawned CLI; needs dist/ and qemu-img)', () => {
  it('qcow2 into a new volume: exit 130, the volume is removed and the message says so', async () => {
    const img = bigImage();
    const vol = path('new');
    const r = await runStopped(['import', vol, img], 'pause');
    expect(r.stderr).toContain('@@copy-started@@');
    expect(r.code, r.stderr).toBe(130);
    expect(existsSync(vol)).toBe(false);
    expect(r.stderr).toContain(`stratadisk: interrupted; nothing was imported: no volume was left in ${vol}.`);
    expect(r.stderr).not.toMatch(/kept/);
    expect(r.stdout).toBe('');
  });

  it('qcow2 into an existing volume: exit 130, the volume is exactly as it was and the message says so', async () => {
    const img = bigImage();
    const vol = await existingVolume();
    const view = await volumeView(vol);
    const files = dirDigest(vol);
    const r = await runStopped(['import', vol, img], 'pause');
    expect(r.code, r.stderr).toBe(130);
    expect(await volumeView(vol)).toEqual(view);
    expect(dirDigest(vol)).toEqual(files);
    expect(r.stderr).toContain(`stratadisk: interrupted; nothing was imported: ${vol} is exactly as it was (same snapshots, same content, same live view).`);
  });

  it('raw into an existing volume: exit 130, the live view is as it was and the message says so', async () => {
    const vol = await existingVolume();
    const view = await volumeView(vol);
    const src = path('raw.img');
    writeFileSync(src, pattern(40 << 20, 7));
    const r = await runStopped(['import', vol, src], 'pause');
    expect(r.code, r.stderr).toBe(130);
    expect(await volumeView(vol)).toEqual(view);
    expect(r.stderr).toContain(`stratadisk: interrupted; nothing was imported: ${vol} is exactly as it was`);
  });

  it('a crash (SIGKILL) once all data is copied leaves the volume as it was; the next open removes the partial layers', async () => {
    const img = bigImage();
    const vol = await existingVolume();
    const view = await volumeView(vol);
    const files = dirDigest(vol);
    // At 100% the snapshot `mid` of the image is already taken inside the import: it must not show.
    const r = await runStopped(['import', vol, img], 'kill', '100%');
    expect(r.signal).toBe('SIGKILL');
    expect(await volumeView(vol)).toEqual(view);
    expect(Object.keys(dirDigest(vol)).length).toBeGreaterThan(Object.keys(files).length); // the import's layer files
    const v = await Volume.open(new NodeDirNamespace(vol));
    await v.close();
    expect(dirDigest(vol)).toEqual(files);
  });
});
