/**
 * `serve-replica` and `replicate` as two processes over TCP on loopback (the real CLI, token in
 * the environment): writes through the NBD server that `replicate` runs reach the secondary; both
 * volumes compare equal once both processes stopped. Also `replicate` attaching to a running
 * `serve-nbd` through its control socket, and the shape of `replication status --json`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../cli/harness.js';
import { have } from '../interop/nbd-helpers.js';
import { built, killAll, run, runOk, runTool, sameVolumes, start, status, until } from './cli-helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  killAll();
  for (const c of cleanups.splice(0)) c();
});

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

describe.skipIf(!built || !have('nbdcopy'))('replication CLI: serve-replica + replicate over TCP', () => {
  it('writes through the NBD server reach the secondary; both compare equal after an orderly stop', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const p = join(dir, 'p');
    const s = join(dir, 's');
    await runOk(['create', p, '--size', '32M', '--block-size', '64K']);
    // something allocated before replication starts: the initial sync copies it
    writeFileSync(join(dir, 'pre.raw'), pattern(3 << 20, 1));
    await runOk(['write', p, '--offset', '5M', join(dir, 'pre.raw')]);

    const sec = start(['serve-replica', s, '--port', '0', '--create', '--size', '32M', '--block-size', '64K']);
    const url = (await sec.waitFor(/tcp:\/\/127\.0\.0\.1:\d+/)).trim();
    const pri = start(['replicate', p, url]);
    const uri = (await pri.waitFor(/nbd\+unix:\/\/\/\?socket=\S+/)).trim();
    await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating');

    const img = join(dir, 'img.raw');
    const data = new Uint8Array(32 << 20);
    data.set(pattern(4 << 20, 2), 1 << 20);
    data.set(pattern(6 << 20, 3), 20 << 20);
    writeFileSync(img, data);
    const copy = await runTool('nbdcopy', [img, uri]);
    expect(copy.stderr).toBe('');
    expect(copy.code).toBe(0);

    // sync mode: what the client got acknowledged is on the secondary already; the shape of status
    const ps = await status(p);
    expect(ps).toMatchObject({ held: true, role: 'primary', frozen: false });
    expect(ps.sessions).toHaveLength(1);
    expect(Object.keys(ps.sessions[0]!).sort()).toEqual(
      ['group', 'lagBytes', 'lagWrites', 'lastError', 'mode', 'name', 'outOfSyncBytes', 'policy', 'recoveredBlocks', 'resync', 'sentBytes', 'state', 'url'].sort(),
    );
    expect(ps.sessions[0]).toMatchObject({ name: expect.stringMatching(/^127\.0\.0\.1-\d+$/), state: 'replicating', mode: 'sync', group: 'default', url, policy: 'run', outOfSyncBytes: 0, resync: null, lastError: null });
    const ss = await status(s);
    expect(ss).toMatchObject({ held: true, role: 'secondary', consistent: true, listening: url, secondary: { connected: true, mode: 'sync' } });

    pri.kill('SIGINT');
    expect(await pri.exited).toBe(0);
    expect(pri.stderr()).toMatch(/the secondary holds everything/);
    sec.kill('SIGINT');
    expect(await sec.exited).toBe(0);
    expect(sec.stderr()).toMatch(/the primary stopped the session/);
    expect(await sameVolumes(p, s)).toBe(true);

    // offline: the role records and the persisted bitmap
    const off = await status(p);
    expect(off).toMatchObject({ held: false, role: 'primary', sessions: [{ state: 'stopped', outOfSyncBytes: 0 }] });
    expect(typeof off.generation).toBe('string');
    const soff = await status(s);
    expect(soff).toMatchObject({ held: false, role: 'secondary', consistent: true, sessions: [] });
  });

  it('replicate attaches to a running serve-nbd through its control socket, over two transports in one group', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const p = join(dir, 'p');
    const s1 = join(dir, 's1');
    const s2 = join(dir, 's2');
    await runOk(['create', p, '--size', '16M', '--block-size', '64K']);
    const nbd = start(['serve-nbd', p]);
    const uri = (await nbd.waitFor(/nbd\+unix:\/\/\/\?socket=\S+/)).trim();
    const a = start(['serve-replica', s1, '--port', '0', '--create', '--size', '16M', '--block-size', '64K']);
    const b = start(['serve-replica', s2, '--port', '0', '--websocket', '--create', '--size', '16M', '--block-size', '64K']);
    const urlA = (await a.waitFor(/tcp:\/\/127\.0\.0\.1:\d+/)).trim();
    const urlB = (await b.waitFor(/ws:\/\/127\.0\.0\.1:\d+\/replica/)).trim();

    const r1 = await runOk(['replicate', p, urlA, '--group', 'g', '--name', 'tcp']);
    expect(r1).toMatch(/The process holding .* replicates it to tcp:/);
    await runOk(['replicate', p, urlB, '--group', 'g', '--name', 'ws']);
    const st = await until(p, (x) => x.sessions.length === 2 && x.sessions.every((y) => y.state === 'replicating'), 'both replicating');
    expect(st.sessions.map((x) => [x.name, x.group]).sort()).toEqual([['tcp', 'g'], ['ws', 'g']]);
    // a mirror would move the served volume away from its sessions: refused
    const mirror = await run(['mirror', p, join(dir, 'moved')]);
    expect(mirror.code).toBe(2);
    expect(mirror.stderr).toMatch(/locked: This volume replicates \(2 sessions\)/);

    const img = join(dir, 'img.raw');
    const data = new Uint8Array(16 << 20);
    data.set(pattern(5 << 20, 7), 3 << 20);
    writeFileSync(img, data);
    expect((await runTool('nbdcopy', [img, uri])).code).toBe(0);

    nbd.kill('SIGINT');
    expect(await nbd.exited).toBe(0);
    a.kill('SIGINT');
    b.kill('SIGINT');
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    expect(await sameVolumes(p, s1)).toBe(true);
    expect(await sameVolumes(p, s2)).toBe(true);
  });
});
