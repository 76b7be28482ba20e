/**
 * Replication's control-socket operations are the owner's alone: a second local user, even one
 * who knows the replication token, cannot freeze or add sessions on a primary, nor promote a
 * running secondary (the control socket refuses them before reading the request). Needs dist/.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';
import { BIN, built, killAll, runOk, start, status, TOKEN, until } from '../replication/cli-helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  killAll();
  for (const c of cleanups.splice(0)) c();
});

describe.skipIf(!otherUser || !built)(`replication control is the owner's alone ${otherUserSkip ?? ''}`, () => {
  it('another user cannot freeze, replicate or promote through the control sockets', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-repl-access-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    chmodSync(dir, 0o755); // the other user can reach the sockets: our checks must refuse them
    const p = join(dir, 'p');
    const s = join(dir, 's');
    await runOk(['create', p, '--size', '4M']);
    const sec = start(['serve-replica', s, '--port', '0', '--create', '--size', '4M']);
    const url = (await sec.waitFor(/tcp:\/\/127\.0\.0\.1:\d+/)).trim();
    start(['replicate', p, url]);
    await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating');
    chmodSync(p, 0o755);
    chmodSync(s, 0o755);

    const env = { STRATADISK_REPLICA_TOKEN: TOKEN };
    for (const args of [
      ['replication', 'freeze', p],
      ['replicate', p, url, '--name', 'evil'],
      ['replication', 'promote', s, '--force'],
      ['replication', 'status', p],
    ]) {
      const r = await otherUser!.run(process.execPath, [BIN, ...args], { env });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/^stratadisk: permission-denied: The control socket of .* belongs to another user/m);
      expect(r.stderr).not.toContain(TOKEN);
    }
    const st = await status(p);
    expect(st.sessions.map((x) => [x.name, x.state])).toEqual([[expect.stringMatching(/^127/), 'replicating']]);
    expect((await status(s)).role).toBe('secondary');
  });
});
