/**
 * kill -9 of either side mid-load, with the real CLI over TCP on loopback:
 * - the secondary: the primary freezes and goes on taking writes (recorded out of sync); the
 *   secondary restarted on the same port and `replication resume` bring it back; equal at the end;
 * - the primary (`replicate`, which holds the volume and serves it over NBD): restarted, it
 *   resynchronises only the regions its activity log held, not the whole volume; equal at the end.
 * Whatever instant the kill lands on, the assertions hold: they are about the end state.
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

const BS = 64 << 10;

function image(path: string, bytes: number, seed: number): string {
  const b = new Uint8Array(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
    b[i + 1] = (x >>> 8) & 0xff;
  }
  writeFileSync(path, b);
  return path;
}

describe.skipIf(!built || !have('nbdcopy'))('replication CLI: kill -9 mid-load, then resume', () => {
  it('secondary killed: the primary freezes and keeps writing; restart + `replication resume` → equal', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const p = join(dir, 'p');
    const s = join(dir, 's');
    await runOk(['create', p, '--size', '32M', '--block-size', '64K']);
    const sec = start(['serve-replica', s, '--port', '0', '--create', '--size', '32M', '--block-size', '64K']);
    const url = (await sec.waitFor(/tcp:\/\/127\.0\.0\.1:\d+/)).trim();
    const port = /:(\d+)$/.exec(url)![1]!;
    const pri = start(['replicate', p, url]);
    const uri = (await pri.waitFor(/nbd\+unix:\/\/\/\?socket=\S+/)).trim();
    await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating');

    const a = image(join(dir, 'a.raw'), 16 << 20, 1);
    expect((await runTool('nbdcopy', [a, uri])).code).toBe(0);
    // mid-load: the secondary dies while nbdcopy writes
    const load = runTool('nbdcopy', [image(join(dir, 'b.raw'), 24 << 20, 2), uri]);
    sec.kill('SIGKILL');
    await sec.exited;
    // the primary's writes go on (policy run): the load completes
    expect((await load).code).toBe(0);
    const frozen = await until(p, (x) => x.sessions[0]?.state === 'frozen', 'frozen');
    expect(frozen.frozen).toBe(true);
    expect(frozen.sessions[0]!.lastError).not.toBeNull();
    // written while frozen: recorded out of sync
    expect((await runTool('nbdcopy', [image(join(dir, 'c.raw'), 8 << 20, 3), uri])).code).toBe(0);
    expect((await until(p, (x) => x.sessions[0]!.outOfSyncBytes > 0, 'out of sync')).sessions[0]!.outOfSyncBytes).toBeGreaterThan(0);

    // resuming while the secondary is down: refused, and the primary stays frozen
    const early = await run(['replication', 'resume', p]);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/not-found: Nothing listens at tcp:/);
    expect(await status(p)).toMatchObject({ frozen: true, sessions: [{ state: 'frozen' }] });

    const sec2 = start(['serve-replica', s, '--port', port]);
    await sec2.waitFor(/serving .* as a secondary/);
    await runOk(['replication', 'resume', p]);
    await until(p, (x) => x.sessions[0]?.state === 'replicating' && x.sessions[0].outOfSyncBytes === 0, 'in sync again');
    await pri.waitFor(/reconnecting to tcp:/);

    pri.kill('SIGINT');
    expect(await pri.exited).toBe(0);
    sec2.kill('SIGINT');
    expect(await sec2.exited).toBe(0);
    expect(await sameVolumes(p, s)).toBe(true);
  });

  it('primary killed: a restarted `replicate` resyncs only what its activity log held → equal', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const p = join(dir, 'p');
    const s = join(dir, 's');
    await runOk(['create', p, '--size', '64M', '--block-size', '64K']);
    // 16 MiB far from the load: a full resync would send it again
    await runOk(['write', p, '--offset', '40M', image(join(dir, 'far.raw'), 16 << 20, 9)]);
    const sec = start(['serve-replica', s, '--port', '0', '--create', '--size', '64M', '--block-size', '64K']);
    const url = (await sec.waitFor(/tcp:\/\/127\.0\.0\.1:\d+/)).trim();
    const pri = start(['replicate', p, url, '--name', 'dr']);
    const uri = (await pri.waitFor(/nbd\+unix:\/\/\/\?socket=\S+/)).trim();
    await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating');

    // load in the first 8 MiB only (two 4 MiB activity-log extents); the primary dies meanwhile
    expect((await runTool('nbdcopy', [image(join(dir, 'a.raw'), 8 << 20, 4), uri])).code).toBe(0);
    const load = runTool('nbdcopy', [image(join(dir, 'b.raw'), 8 << 20, 5), uri]);
    pri.kill('SIGKILL');
    await pri.exited;
    await load; // fails or not, depending on where the kill landed

    const pri2 = start(['replicate', p, url, '--name', 'dr']);
    await pri2.waitFor(/the activity log held \d+ bytes of recently written regions/);
    const st = await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating again');
    const sess = st.sessions[0]!;
    // what was resynced: only the activity log's extents (at most the 8 MiB loaded), never the far 16 MiB
    expect(sess.recoveredBlocks).toBeGreaterThan(0);
    expect(sess.recoveredBlocks * BS).toBeLessThanOrEqual(8 << 20);
    expect(sess.sentBytes).toBeLessThanOrEqual(sess.recoveredBlocks * BS);
    expect(sess.outOfSyncBytes).toBe(0);

    pri2.kill('SIGINT');
    expect(await pri2.exited).toBe(0);
    sec.kill('SIGINT');
    expect(await sec.exited).toBe(0);
    expect(await sameVolumes(p, s)).toBe(true);
  });
});
