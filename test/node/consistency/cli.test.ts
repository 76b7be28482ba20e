/**
 * `stratadisk serve-group` and `stratadisk group-snapshot`: a host process for a set of volume
 * directories, and a one-shot participant that asks it for a consistent snapshot.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectGroup } from '../../../src/consistency/node-socket.js';
import { Participant } from '../../../src/consistency/participant.js';
import type { ToHost } from '../../../src/consistency/protocol.js';
import { cli, ok, startCli, tempDir } from '../cli/harness.js';

describe('stratadisk serve-group / group-snapshot', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('hosts volume directories, takes consistent snapshots on request, honours vetoes', async () => {
    const [a, b, sock] = [join(tmp.dir, 'ledger-a'), join(tmp.dir, 'ledger-b'), join(tmp.dir, 'g.sock')];
    await ok(['create', a, '--size', '1M', '--block-size', '4K']);
    await ok(['create', b, '--size', '1M', '--block-size', '4K']);
    const server = startCli(['serve-group', sock, a, `other=${b}`, '--freeze-timeout', '2000']);
    expect(await server.firstLine()).toBe(`Serving ledger-a, other on ${sock}`);

    const writer = new Participant(await connectGroup<ToHost>(sock), { name: 'writer' });
    await writer.ready;
    await writer.gate.run(() => writer.volume('other').write(0, new Uint8Array(4096).fill(5)));
    const r = await cli(['group-snapshot', sock, 'nightly']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Snapshot nightly of ledger-a, other: 2 participant\(s\) frozen for \d+ ms\.\n$/);
    expect(writer.snapshotsSeen).toEqual(['nightly']);

    const vetoing = new Participant(await connectGroup<ToHost>(sock), { name: 'db', callbacks: { freeze: () => ({ veto: 'checkpoint running' }) } });
    await vetoing.ready;
    const v = await cli(['group-snapshot', sock, '--json']);
    expect(v.code).toBe(2);
    expect(v.stderr).toContain('aborted: Participant "db" vetoed the snapshot: checkpoint running');
    vetoing.close();
    const j = await cli(['group-snapshot', sock, '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ volumes: ['ledger-a', 'other'], participants: 2 });

    writer.close();
    server.stop();
    expect(await server.done).toBe(0);
    expect(server.out().stderr).toContain('stopped; the volumes were flushed and closed');
    for (const dir of [a, b]) expect(await ok(['snapshots', dir])).toContain('nightly');
    const none = await cli(['group-snapshot', sock]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('not-found: No consistency-group host answers');
    const dupe = await cli(['serve-group', sock, a, `ledger-a=${b}`]);
    expect(dupe.code).not.toBe(0);
    expect(dupe.stderr).toContain('two volumes are named "ledger-a"');
  });
});
