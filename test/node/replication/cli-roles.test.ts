/**
 * Role changes with the real CLI: failover (promote a running secondary), split brain (both sides
 * written apart, then paired again: refused with `split-brain`, nothing copied), and the refusal
 * to promote a secondary whose resync was interrupted unless --revert-to-consistent / --force.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../cli/harness.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { RoleRecord, newGenerationId } from '../../../src/replication/roles.js';
import { built, killAll, run, runOk, start, status, until } from './cli-helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  killAll();
  for (const c of cleanups.splice(0)) c();
});

function fill(path: string, bytes: number, value: number): string {
  writeFileSync(path, new Uint8Array(bytes).fill(value));
  return path;
}

async function readAt(dir: string, offset: number, length: number): Promise<Uint8Array> {
  const v = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
  try {
    return await v.read(offset, length);
  } finally {
    await v.close();
  }
}

describe.skipIf(!built)('replication CLI: promote, demote, split brain', () => {
  it('failover, then both sides written apart: reconnecting is refused as split-brain and nothing is copied', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const p = join(dir, 'p');
    const s = join(dir, 's');
    await runOk(['create', p, '--size', '4M', '--block-size', '64K']);
    await runOk(['write', p, '--offset', '0', fill(join(dir, 'a'), 256 << 10, 0xaa)]);
    const sec = start(['serve-replica', s, '--port', '0', '--create', '--size', '4M', '--block-size', '64K']);
    const url = (await sec.waitFor(/tcp:\/\/127\.0\.0\.1:\d+/)).trim();
    const port = /:(\d+)$/.exec(url)![1]!;
    const pri = start(['replicate', p, url]);
    await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating');

    // promote while the primary is connected: refused (locked) without --force
    const busy = await run(['replication', 'promote', s]);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toMatch(/locked: .* is connected to its primary/);

    pri.kill('SIGINT');
    expect(await pri.exited).toBe(0);
    const promoted = await runOk(['replication', 'promote', s]);
    expect(promoted).toMatch(/Promoted .* to primary \(new data generation [0-9a-f]{16}\)/);
    expect(await sec.exited).toBe(0);
    expect(sec.stderr()).toMatch(/was promoted to primary/);

    // both written apart
    await runOk(['write', s, '--offset', '1M', fill(join(dir, 'b'), 64 << 10, 0xbb)]);
    await runOk(['write', p, '--offset', '2M', fill(join(dir, 'c'), 64 << 10, 0xcc)]);
    const sBefore = await readAt(s, 0, 4 << 20);

    // the old secondary back in its role, then paired again with the old primary
    await runOk(['replication', 'demote', s]);
    const sec2 = start(['serve-replica', s, '--port', port]);
    await sec2.waitFor(/as a secondary/);
    const r = await run(['replicate', p, url]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: split-brain: Split brain: .* were both written while apart/m);
    sec2.kill('SIGINT');
    expect(await sec2.exited).toBe(0);
    expect(Buffer.compare(Buffer.from(await readAt(s, 0, 4 << 20)), Buffer.from(sBefore))).toBe(0);
    expect((await readAt(s, 2 << 20, 16))[0]).toBe(0); // the primary's apart write never arrived

    // recovery (DRBD's discard-my-data): keep p; s gives up its data and is copied over entirely
    const bad = await run(['replication', 'promote', s, '--discard-my-data']);
    expect(bad.code).toBe(2);
    const gaveUp = await runOk(['replication', 'demote', s, '--discard-my-data']);
    expect(gaveUp).toMatch(/gave up its data generation/);
    const sec3 = start(['serve-replica', s, '--port', port]);
    await sec3.waitFor(/as a secondary/);
    const pri3 = start(['replicate', p, url]);
    await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating after the recovery');
    pri3.kill('SIGINT');
    expect(await pri3.exited).toBe(0);
    sec3.kill('SIGINT');
    expect(await sec3.exited).toBe(0);
    expect(Buffer.compare(Buffer.from(await readAt(s, 0, 4 << 20)), Buffer.from(await readAt(p, 0, 4 << 20)))).toBe(0);
    expect((await readAt(s, 1 << 20, 16))[0]).toBe(0); // what s wrote apart is gone
    expect((await readAt(s, 2 << 20, 16))[0]).toBe(0xcc); // p's apart write arrived
  });

  it('a secondary whose resync was interrupted is promoted only with --revert-to-consistent (back to the kept snapshot) or --force', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const s = join(dir, 's');
    await runOk(['create', s, '--size', '1M', '--block-size', '64K']);
    // the state an interrupted resync leaves (src/replication/secondary.ts): a snapshot of the
    // last consistent state, blocks written after it, the role record saying inconsistent
    const v = await Volume.open(new NodeDirNamespace(s));
    await v.write(0, new Uint8Array(64 << 10).fill(1));
    await v.snapshot('replication-resync-test');
    await v.write(0, new Uint8Array(64 << 10).fill(2));
    const role = await RoleRecord.open(v.ns);
    await role.update((x) => ({ ...x, role: 'secondary', gen: { current: newGenerationId(), history: [] }, consistent: false, resyncSnapshot: 'replication-resync-test', peer: 'x' }));
    await v.close();

    const refused = await run(['replication', 'promote', s]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/invalid-argument: .* is inconsistent: a resync from its primary was interrupted.*--revert-to-consistent.*--force/s);
    expect((await status(s)).role).toBe('secondary');

    const ok = await runOk(['replication', 'promote', s, '--revert-to-consistent']);
    expect(ok).toMatch(/reverted to snapshot replication-resync-test/);
    expect((await readAt(s, 0, 1))[0]).toBe(1);
    const st = await status(s);
    expect(st).toMatchObject({ held: false, role: 'primary', consistent: true, resyncSnapshot: null });
  });
});
