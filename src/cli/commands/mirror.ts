import { existsSync, readdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { StrataError } from '../../errors.js';
import { mirror } from '../../jobs/mirror.js';
import { mirrorRaw } from '../../jobs/mirror-raw.js';
import { checkMirrorTarget, checkRawTarget } from '../../jobs/target-check.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { NodeFileStore } from '../../store/node-file.js';
import { RemoteNamespace } from '../../store/remote.js';
import { argvWarning, readSecret, registerSecret } from '../../util/secret.js';
import type { StoreNamespace } from '../../store/store.js';
import type { Command } from '../command.js';
import { line, UsageError } from '../io.js';
import { followJob, runRemote } from '../job-runner.js';
import { openVolume, parseTarget } from '../target.js';

export const mirrorCommand: Command = {
  name: 'mirror',
  summary: 'copy a volume (all layers, or flattened) to another directory, a store server, or a raw image',
  usage: 'mirror SRC DST [--flatten] [--token-file FILE] [--insecure] | mirror SRC FILE|DEVICE --raw [--force]',
  details: [
    'Copies every layer and snapshot of SRC into DST (a new or empty directory, or a store server',
    'URL http(s)://HOST:PORT/NAME from `stratadisk serve-store`), or with --flatten only the',
    'live view, as a single layer. When another process serves SRC (serve-nbd), the copy runs',
    'there, through its control socket, while the volume is written: new writes are mirrored to',
    'DST, and at the end serve-nbd switches over to a DST directory: it serves DST from then on',
    '(clients stay connected; SRC takes no more writes); a copy on a store server is a consistent',
    'copy as of the moment the job ends (the server keeps serving SRC). The API (`mirror()` in',
    'stratadisk) can also switch a live volume over to the copy.',
    'With --raw, DST is a raw image: a file (created, or overwritten with --force) or a block',
    'device at least as large as the volume; it gets the live view byte for byte, flushed.',
    '  --flatten   copy the live view into one layer (snapshots are not copied)',
    '  --token-file FILE  the store server\'s token: a file of mode 0600 (- reads standard input);',
    '              else $STRATADISK_TOKEN. (--token T and URL#token=T still work but warn: argv is public)',
    '  --insecure  allow plain http:// to a store server that is not on loopback',
    '  --raw       DST is a raw image file or block device',
    '  --force     with --raw: overwrite a regular file that already has content',
  ].join('\n'),
  options: { flatten: { type: 'boolean' }, token: { type: 'string' }, 'token-file': { type: 'string' }, raw: { type: 'boolean' }, force: { type: 'boolean' }, insecure: { type: 'boolean' } },
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const { io, args, values } = ctx;
    const { dir } = parseTarget(args[0]!, false, 'mirror');
    const flatten = values.flatten === true;
    const raw = values.raw === true;
    const remote = /^https?:\/\//i.test(args[1]!);
    const label = args[1]!.split('#')[0]!;
    if (raw && remote) throw new UsageError('--raw takes a file or device path, not a URL', 'mirror');
    let dst = remote ? args[1]! : resolve(args[1]!);
    if (remote) {
      const warn = (m: string) => line(io.stderr, `stratadisk: mirror: ${m}`);
      const inUrl = new URLSearchParams(dst.split('#')[1] ?? '').get('token');
      if (inUrl !== null) {
        registerSecret(inUrl);
        warn(argvWarning({ what: 'the store server\'s token', argumentName: 'URL#token=', env: 'STRATADISK_TOKEN' }));
      } else {
        const token = await readSecret({
          what: 'the store server\'s token',
          ...(typeof values['token-file'] === 'string' ? { file: values['token-file'] } : {}),
          ...(typeof values.token === 'string' ? { argument: values.token, argumentName: '--token' } : {}),
          env: 'STRATADISK_TOKEN',
          ...(io.stdin ? { stdin: io.stdin as AsyncIterable<Uint8Array> } : {}),
          warn,
        });
        if (token) dst = `${dst.split('#')[0]}#token=${encodeURIComponent(token)}`;
      }
      // plain http beyond loopback only when asked (RemoteNamespace reads it from the fragment, here and in a serving process)
      if (values.insecure === true) dst = `${dst}${dst.includes('#') ? '&' : '#'}insecure=1`;
    }
    if (raw) {
      const st = existsSync(dst) ? statSync(dst) : null;
      if (st?.isFile() && st.size > 0 && values.force !== true) throw new UsageError(`${args[1]} already has content; pass --force to overwrite it with the image`, 'mirror');
    } else if (!remote && existsSync(dst) && readdirSync(dst).length > 0) {
      throw new UsageError(`${args[1]} is not empty; mirror into a new or empty directory`, 'mirror');
    }
    let v;
    try {
      v = await openVolume(dir, false);
    } catch (e) {
      if (!(e instanceof StrataError && e.code === 'locked')) throw e;
      if (raw) throw new StrataError('locked', `${dir} is open in another process; a raw mirror runs in the process that has the volume (API: mirrorRaw). Stop that process, or mirror to a directory or store server.`, { cause: e });
      const info = await runRemote(ctx, dir, { op: 'mirror', target: dst, flatten }, 'mirror', e);
      const remoteDst = /^https?:\/\//.test(args[1]!);
      line(io.stdout, `Mirrored ${dir} to ${label} online (${info.progress.done} bytes copied while it was served)${remoteDst ? '' : `; the server now serves ${label}`}.`);
      return 0;
    }
    try {
      if (raw) {
        await checkRawTarget(dst, { label });
        const store = await NodeFileStore.open(dst, { create: !existsSync(dst) });
        try {
          if (store.resizable && store.size > 0) await store.truncate(0); // --force: a file starts over (then reads as zeros)
          const job = mirrorRaw(v, store, { targetLabel: label, signal: ctx.signal });
          const info = await followJob(ctx, job, 'mirror');
          line(io.stdout, `Mirrored ${dir} to the raw image ${label}: ${info.progress.done} bytes copied.`);
        } finally {
          await store.close();
        }
        return 0;
      }
      if (!remote) await checkMirrorTarget(dst, { create: true, label });
      const ns: StoreNamespace = remote ? new RemoteNamespace(dst) : new NodeDirNamespace(dst, { create: true });
      const job = mirror(v, ns, { flatten, targetLabel: label, signal: ctx.signal });
      const info = await followJob(ctx, job, 'mirror');
      await job.target?.close();
      line(io.stdout, `Mirrored ${dir} to ${label}${flatten ? ' (flattened)' : ''}: ${info.progress.done} bytes copied.`);
    } finally {
      await v.close();
    }
    return 0;
  },
};
