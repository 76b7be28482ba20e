import { isStrataError } from '../../errors.js';
import { connectGroup } from '../../consistency/node-socket.js';
import { Participant } from '../../consistency/participant.js';
import type { ToHost } from '../../consistency/protocol.js';
import { JSON_OPTION, type Command } from '../command.js';
import { EXIT, line } from '../io.js';

export const groupSnapshotCommand: Command = {
  name: 'group-snapshot',
  summary: 'take a consistent snapshot of every volume of a group served by `serve-group`',
  usage: 'group-snapshot SOCKET [NAME] [--json]',
  details: [
    'Joins the group at SOCKET, asks for a snapshot (every participant frozen, every volume',
    'snapshotted as NAME, or cg-<time>-<n>), prints its id, and leaves. Exit 2 with `aborted`',
    '(a participant vetoed or went away) or `timeout` (a freeze limit passed).',
  ].join('\n'),
  options: { ...JSON_OPTION },
  positionals: { min: 1, max: 2 },
  async run({ io, args, values }) {
    const p = new Participant(await connectGroup<ToHost>(args[0]!), { name: 'stratadisk group-snapshot' });
    try {
      await p.ready;
      let s;
      try {
        s = await p.requestSnapshot(args[1]);
      } catch (e) {
        // `aborted` here is the group's verdict (veto, a participant gone), not a Ctrl-C: exit 2, not 130.
        if (!isStrataError(e, 'aborted')) throw e;
        line(io.stderr, `stratadisk: aborted: ${e.message}`);
        return EXIT.error;
      }
      if (values.json) line(io.stdout, JSON.stringify(s));
      else line(io.stdout, `Snapshot ${s.id} of ${s.volumes.join(', ')}: ${s.participants} participant(s) frozen for ${s.frozenMs} ms.`);
      return 0;
    } finally {
      p.close();
    }
  },
};
