/**
 * The control socket across real processes: `serve-nbd` holds the volume, separate `stratadisk`
 * processes run delete-snapshot, commit and jobs against it (needs dist/: npm run build).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';
import { tempDir } from '../cli/harness.js';
import { buildChain, compare } from './consolidate-helpers.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const built = existsSync(BIN);
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function run(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

describe('jobs across processes', () => {
  it.skipIf(!built)('delete-snapshot, commit and jobs reach the serve-nbd process through its control socket', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const dir = join(t.dir, 'v');
    const { vol, model } = await buildChain(new NodeDirNamespace(dir, { create: true }), new Rng(8));
    await vol.close();
    const server = spawn(process.execPath, [BIN, 'serve-nbd', dir, '--socket', join(t.dir, 'nbd.sock')], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => server.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      server.stdout.on('data', (d: Buffer) => d.toString().includes('nbd+unix') && resolve());
      server.once('exit', (c) => reject(new Error(`serve-nbd exited ${c}`)));
    });
    // the server's own `not-found` (no such snapshot) is reported as such, not as "no control socket"
    let r = run('delete-snapshot', dir, 'nosuch');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: not-found: No snapshot named "nosuch"/);
    r = run('delete-snapshot', dir, 's1');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/online, in the process serving it/);
    model.snaps.delete('s1');
    r = run('commit', dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--drop-snapshot/);
    r = run('commit', dir, '--drop-snapshot');
    expect(r.stdout).toMatch(/online/);
    model.snaps.delete('s2');
    r = run('jobs', dir);
    expect(r.stdout).toMatch(/No jobs/);
    const exited = new Promise((ok) => server.once('exit', ok));
    server.kill('SIGTERM');
    await exited;
    const v = await Volume.open(new NodeDirNamespace(dir), { readOnly: true });
    expect(await compare(v, model)).toBeNull();
    expect(v.layerChain().length).toBe(2);
    await v.close();
  }, 60_000);
});
