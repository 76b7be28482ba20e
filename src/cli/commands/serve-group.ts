import { once } from 'node:events';
import { basename } from 'node:path';
import { GroupHost } from '../../consistency/host.js';
import { listenGroup } from '../../consistency/node-socket.js';
import { repairSnapshotSets } from '../../consistency/repair.js';
import { markGroupSnapshots } from '../../journal/auto-marks.js';
import type { Journal } from '../../journal/journal.js';
import type { Volume } from '../../volume/volume.js';
import type { Command } from '../command.js';
import { line, UsageError } from '../io.js';
import { openJournaledVolume } from '../target.js';

function positiveMs(v: string | boolean | undefined, option: string): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n <= 0 || n > 3_600_000) throw new UsageError(`--${option}: "${v}" is not a number of milliseconds (1..3600000)`, 'serve-group');
  return n;
}

export const serveGroupCommand: Command = {
  name: 'serve-group',
  summary: 'host a consistency group: own volumes, serve writer processes, coordinate consistent snapshots',
  usage: 'serve-group SOCKET [NAME=]DIR... [--freeze-timeout MS] [--freeze-limit MS]',
  details: [
    'Opens each volume for writing and serves them on the Unix socket SOCKET (a named pipe',
    '\\\\.\\pipe\\NAME on Windows) to participants (Participant + connectGroup in stratadisk/node).',
    'A consistent snapshot (from any participant, or `stratadisk group-snapshot SOCKET`) freezes',
    'every participant, snapshots every volume under one name, then thaws them. NAME defaults to',
    'the directory\'s name. Serves until Ctrl-C or SIGTERM, then flushes and closes the volumes.',
    'SOCKET is private: mode 0600, and only processes of the user running serve-group may join',
    '(each proves it can read a key file only that user can read); others are refused and logged.',
    'A stale SOCKET left by a host that died is replaced; one a process listens on, or anything',
    'that is not a socket (a regular file, a directory, a symbolic link), is refused and left alone.',
    'At start, a set snapshot (default name cg-...) that a crash left on some volumes only is removed.',
    'A volume that keeps a write log gets a mark group:NAME at each set snapshot NAME (taken while',
    'the set is frozen), so `stratadisk restore DIR mark:group:NAME` goes back to it.',
    '  --freeze-timeout MS  each participant must freeze within this (default 10000)',
    '  --freeze-limit MS    nobody stays frozen longer (default 60000)',
  ].join('\n'),
  options: { 'freeze-timeout': { type: 'string' }, 'freeze-limit': { type: 'string' } },
  positionals: { min: 2 },
  async run({ io, args, values, signal }) {
    const [socket, ...specs] = args as [string, ...string[]];
    const named = specs.map((s) => {
      const eq = s.indexOf('=');
      return eq > 0 ? { name: s.slice(0, eq), dir: s.slice(eq + 1) } : { name: basename(s), dir: s };
    });
    const dup = named.find((v, i) => named.findIndex((w) => w.name === v.name) !== i);
    if (dup) throw new UsageError(`two volumes are named "${dup.name}"; name them with NAME=DIR`, 'serve-group');
    const freezeTimeoutMs = positiveMs(values['freeze-timeout'], 'freeze-timeout');
    const freezeLimitMs = positiveMs(values['freeze-limit'], 'freeze-limit');
    const volumes: Record<string, Volume> = {};
    const journals: Record<string, Journal | null> = {};
    try {
      for (const { name, dir } of named) {
        const opened = await openJournaledVolume(dir, false);
        volumes[name] = opened.volume;
        journals[name] = opened.journal;
      }
      // A crash of an earlier host during a set snapshot may have left it on some volumes only.
      for (const n of await repairSnapshotSets(volumes)) line(io.stderr, `stratadisk: serve-group: removed ${n}, a set snapshot that a crash left on some volumes only`);
      const host = new GroupHost(volumes, { onSnapshot: markGroupSnapshots(journals), ...(freezeTimeoutMs ? { freezeTimeoutMs } : {}), ...(freezeLimitMs ? { freezeLimitMs } : {}) });
      host.coordinator.onEvent = (e) => {
        if (e.state === 'done' || e.state === 'aborted') line(io.stderr, `stratadisk: serve-group: attempt ${e.attempt} ${e.state}${e.reason ? `: ${e.reason}` : ''}`);
      };
      const server = await listenGroup(host, socket, { onRefused: (reason) => line(io.stderr, `stratadisk: serve-group: ${reason}`) });
      line(io.stdout, `Serving ${Object.keys(volumes).join(', ')} on ${socket}`);
      const term = new AbortController();
      const onTerm = () => term.abort();
      process.on('SIGTERM', onTerm);
      try {
        if (!signal.aborted) await Promise.race([once(signal, 'abort'), once(term.signal, 'abort')]);
      } finally {
        process.off('SIGTERM', onTerm);
        host.close();
        await new Promise((r) => server.close(() => r(undefined)));
      }
    } finally {
      for (const v of Object.values(volumes)) await v.close();
    }
    line(io.stderr, 'stratadisk: serve-group: stopped; the volumes were flushed and closed.');
    return 0;
  },
};
