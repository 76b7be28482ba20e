/**
 * `stratadisk resync SRC URL` against a `serve-replica` server (the real CLI in child processes,
 * token in the environment): a local volume that differs from the served one in 1 % of its
 * segments is brought equal moving only those segments; `--verify` over the URL lists exactly
 * them; a wrong token is refused without echoing it; a resync while a primary is connected and a
 * primary while a resync runs are both refused with `locked`. Every wait is for something the
 * processes print or report, never a clock.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../cli/harness.js';
import { built, env, killAll, run, runOk, sameVolumes, start, status, TOKEN, until } from '../replication/cli-helpers.js';
import { connectReplicaTcp } from '../../../src/replication/links/tcp.js';
import { remoteSide } from '../../../src/resync/remote.js';
import { pickSegments, randomBytes } from './helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  killAll();
  for (const c of cleanups.splice(0)) c();
});

const MiB = 1 << 20;
/** 200 segments of 1 MiB (the server's default): 2 diverged are 1 % */
const SIZE = 200 * MiB;
const SEGMENTS = 200;
const FRESH = '0000000000000000';

/** Two volumes with the same content, then `a` changed in 2 seeded segments; the server on `b`. */
async function setup(): Promise<{ dir: string; a: string; b: string; diverged: number[] }> {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  const base = join(dir, 'base.raw');
  writeFileSync(base, randomBytes(24 * MiB, 17));
  for (const v of [a, b]) {
    await runOk(['create', v, '--size', String(SIZE), '--block-size', '64K']);
    await runOk(['write', v, '--offset', String(8 * MiB), base]);
    await runOk(['write', v, '--offset', String(150 * MiB), base]);
  }
  const diverged = pickSegments(SEGMENTS, 2, 4);
  const patch = join(dir, 'patch.raw');
  writeFileSync(patch, randomBytes(4096, 99));
  for (const s of diverged) await runOk(['write', a, '--offset', String(s * MiB + 12288), patch]);
  return { dir, a, b, diverged };
}

async function serve(b: string) {
  const sec = start(['serve-replica', b, '--port', '0']);
  const url = (await sec.waitFor(/tcp:\/\/127\.0\.0\.1:\d+/)).trim();
  return { sec, url };
}

describe.skipIf(!built)('resync to a serve-replica URL', () => {
  it('verify lists exactly the diverged segments; resync moves only them; both compare equal', async () => {
    const { a, b, diverged } = await setup();
    const { sec, url } = await serve(b);

    const v = await run(['resync', a, url, '--verify', '--json']);
    expect(v.code).toBe(1);
    const vr = JSON.parse(v.stdout) as { segmentsCompared: number; differingOffsets: number[]; copiedOffsets: number[] };
    expect(vr.segmentsCompared).toBe(SEGMENTS);
    expect(vr.differingOffsets).toEqual(diverged.map((s) => s * MiB));
    expect(vr.copiedOffsets).toEqual([]);

    const r = await run(['resync', a, url, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rr = JSON.parse(r.stdout) as { complete: boolean; segmentsDiffering: number; copiedOffsets: number[]; bytesSentSrcToDst: number };
    expect(rr.complete).toBe(true);
    expect(rr.copiedOffsets).toEqual(diverged.map((s) => s * MiB));
    // the bytes on the wire towards the server: the changed segments plus requests (checksums travel the other way)
    expect(rr.bytesSentSrcToDst).toBeGreaterThanOrEqual(2 * MiB);
    expect(rr.bytesSentSrcToDst).toBeLessThanOrEqual(1.1 * 2 * MiB);

    // the human form after: identical, over the URL too
    const again = await run(['resync', a, url, '--verify']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^Identical: 200 segments of 1 MiB compared\./);

    sec.kill('SIGINT');
    expect(await sec.exited).toBe(0);
    expect(sec.stderr()).toMatch(/resync from 127\.0\.0\.1:\d+: writing; the next primary copies everything/);
    expect(await sameVolumes(a, b)).toBe(true);
  });

  it('over WebSocket with the remote side as SRC: the local volume is repaired, bytes counted as sent', async () => {
    const { a, b, diverged } = await setup();
    const sec = start(['serve-replica', b, '--port', '0', '--websocket']);
    const url = (await sec.waitFor(/ws:\/\/127\.0\.0\.1:\d+\/replica/)).trim();
    const r = await run(['resync', url, a, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rr = JSON.parse(r.stdout) as { complete: boolean; copiedOffsets: number[]; bytesSentSrcToDst: number };
    expect(rr.complete).toBe(true);
    expect(rr.copiedOffsets).toEqual(diverged.map((s) => s * MiB));
    // WebSocket delivers Buffers: they count as their bytes
    expect(rr.bytesSentSrcToDst).toBeGreaterThanOrEqual(2 * MiB);
    expect(rr.bytesSentSrcToDst).toBeLessThanOrEqual(1.1 * 2 * MiB);
    sec.kill('SIGINT');
    expect(await sec.exited).toBe(0);
    expect(sec.stderr()).toMatch(/nothing written/);
    expect(await sameVolumes(a, b)).toBe(true);
  });

  it('a wrong token is refused (permission-denied) and never echoed; nothing is written', async () => {
    const { a, b, diverged } = await setup();
    const { sec, url } = await serve(b);
    const wrong = 'not-the-token-' + 'x'.repeat(40);
    const r = await run(['resync', a, url], env(wrong));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: permission-denied: /);
    expect(r.stdout + r.stderr).not.toContain(wrong);
    sec.kill('SIGINT');
    expect(await sec.exited).toBe(0);
    expect(sec.stderr()).toMatch(/refused a connection from 127\.0\.0\.1:\d+: Authentication with the peer failed/);
    expect(sec.stderr()).not.toContain(wrong);
    expect(sec.stderr()).not.toContain(TOKEN);
    expect(diverged.length).toBe(2);
    expect(await sameVolumes(a, b)).toBe(false);
  });

  it('a resync while a primary is connected is refused (locked), and a primary while a resync runs', async () => {
    const { dir, a, b } = await setup();
    const { sec, url } = await serve(b);
    // a primary: a third volume of the same geometry
    const p = join(dir, 'p');
    await runOk(['create', p, '--size', String(SIZE), '--block-size', '64K']);
    const pri = start(['replicate', p, url]);
    await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating');
    const paired = (await status(b)) as unknown as { generation: string };
    expect(paired.generation).not.toBe(FRESH);
    const r = await run(['resync', a, url]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: locked: .*a primary is connected/);
    expect(sec.stderr()).toMatch(/refused a resync from 127\.0\.0\.1:\d+: locked: a primary is connected/);
    pri.kill('SIGINT');
    await pri.exited;
    await sec.waitFor(/session \S+: ended/);

    // a resync client holds the server (this process, over the same API the CLI uses)
    const link = await connectReplicaTcp(url, { token: TOKEN });
    const side = await remoteSide(link);
    expect(side.size).toBe(SIZE);
    const pri2 = start(['replicate', p, url]);
    await sec.waitFor(/refused a primary from 127\.0\.0\.1:\d+: locked: a resync from 127\.0\.0\.1:\d+ is running/);
    pri2.kill('SIGINT');
    await pri2.exited;
    side.close();
    await sec.waitFor(/resync from 127\.0\.0\.1:\d+ ended/);

    // a resync that writes: the secondary forgets its generation, so the next primary copies everything
    expect((await run(['resync', a, url])).code).toBe(0);
    sec.kill('SIGINT');
    expect(await sec.exited).toBe(0);
    const after = (await status(b)) as unknown as { role: string; generation: string; history: string[]; consistent: boolean; peer: string | null };
    expect(after).toMatchObject({ role: 'secondary', generation: FRESH, consistent: false, peer: null });
    expect(after.history[0]).toBe(paired.generation);
    expect(await sameVolumes(a, b)).toBe(true);
  });

  it('`replication promote` while a resync client is connected cuts it off; the promoted volume stays a primary', async () => {
    const { dir, b } = await setup();
    const { sec, url } = await serve(b);
    // pair b with a primary first (promote needs a data generation), then stop that session
    const p = join(dir, 'p');
    await runOk(['create', p, '--size', String(SIZE), '--block-size', '64K']);
    const pri = start(['replicate', p, url]);
    await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating');
    pri.kill('SIGINT');
    await pri.exited;
    await sec.waitFor(/session \S+: ended/);

    const link = await connectReplicaTcp(url, { token: TOKEN });
    const side = await remoteSide(link);
    const pr = await run(['replication', 'promote', b]);
    expect(pr.stderr).toBe('');
    expect(pr.code).toBe(0);
    expect(await sec.exited).toBe(0);
    expect(sec.stderr()).toMatch(/resync from 127\.0\.0\.1:\d+ ended .*nothing written/);
    await expect(side.write(0, new Uint8Array(MiB).fill(7))).rejects.toMatchObject({ code: 'io' });
    const after = (await status(b)) as unknown as { role: string; generation: string };
    expect(after.role).toBe('primary');
    expect(after.generation).not.toBe(FRESH);
  });
});
