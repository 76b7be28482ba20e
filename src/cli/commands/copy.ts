import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { StrataError } from '../../errors.js';
import { MANIFEST_SLOTS } from '../../format/manifest.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { RemoteNamespace } from '../../store/remote.js';
import type { StoreNamespace } from '../../store/store.js';
import { SNAPSHOT_NAME } from '../../format/manifest.js';
import { argvWarning, readSecret, redactUrl, registerSecret } from '../../util/secret.js';
import { copyVolume, type CopyReport } from '../../transfer/copy.js';
import { ObjectNamespace } from '../../transfer/object-namespace.js';
import { openObjectStore } from '../../transfer/open-objects.js';
import { STAGING_MARK } from '../../volume/staging-mark.js';
import { JSON_OPTION, type Command } from '../command.js';
import { line, withKept } from '../io.js';
import { prepareVolumeDir, type NewVolumeDir } from '../new-volume-dir.js';
import type { Progress } from '../progress.js';
import { formatBytes } from '../size.js';
import { parseTarget } from '../target.js';

export const copyCommand: Command = {
  name: 'copy',
  summary: 'copy a volume (or a snapshot) with its chain, re-linking layers the destination already holds',
  usage: 'copy SRC[@NAME] DST [--trust-reused] [--json] [--token-file FILE] [--insecure]',
  details: [
    'Copies the chain of SRC\'s live view (or of snapshot NAME) with its snapshots. DST is either',
    'a new or empty directory: it becomes a new volume (like `create`), or a volume: the chain is',
    'received into it. Walking up from the base, each layer whose content ID, parent and sealed',
    'state match a layer DST already holds is re-linked to it (after its data was read back and',
    'checked) instead of copied; the rest are copied, every block checked against its checksum',
    'as it is read. The chain\'s snapshots are added to DST and DST\'s live view becomes the',
    'copy\'s; DST\'s live layer must hold no changes (snapshot or revert them first), its other',
    'snapshots stay. Nothing shows at DST until the copy is complete; Ctrl-C or a failure removes',
    'what it made. After a crash, running the same copy again keeps the layers already copied.',
    'Copying the live view takes SRC\'s writer lock (copy a snapshot of a volume in use).',
    'SRC and DST may also be store-server namespaces, http(s)://HOST:PORT/NAME (`serve-store`),',
    'or volumes in an object store, s3://BUCKET/PREFIX (any S3-compatible endpoint; endpoint,',
    'region and credentials from the AWS environment variables or files, never from argv). Its',
    'objects sit under PREFIX/volume/; its writer lock is a lease that a crashed copy leaves for',
    'at most 60 s. info, check, map, export and compare read s3:// volumes too.',
    '  --trust-reused  re-link a layer DST holds on its content ID, parent and sealed state alone,',
    '           without reading its data back first (saves downloading the base of an s3:// or',
    '           remote copy each time; damage in it then shows as checksum-mismatch when read,',
    '           never as wrong bytes)',
    '  --insecure  allow plain http:// to a store server that is not on loopback',
    '  --token-file FILE  the store server\'s token: a file of mode 0600 (- reads standard input);',
    '           else $STRATADISK_TOKEN (URL#token=T still works but warns: argv is public)',
    '  --json   { into, layers: [{ source, target, contentId, how, bytes }], reused, copied,',
    '           resumed, bytesMoved, bytesTotal, bytesVerified, rejected, snapshots, active, uuid }',
  ].join('\n'),
  options: { ...JSON_OPTION, 'token-file': { type: 'string' }, insecure: { type: 'boolean' }, 'trust-reused': { type: 'boolean' } },
  positionals: { min: 2, max: 2 },
  async run({ io, args, values, signal, progress }) {
    const srcUrl = isUrl(args[0]!) || isS3(args[0]!);
    const dstUrl = isUrl(args[1]!) || isS3(args[1]!);
    const src = srcUrl ? parseUrlTarget(args[0]!) : parseTarget(args[0]!, true, 'copy');
    if (isS3(args[1]!) && parseUrlTarget(args[1]!).snapshot !== undefined) throw new StrataError('invalid-argument', `${redactUrl(args[1]!)} names a snapshot; the destination is a volume (s3://BUCKET/PREFIX).`);
    const dstDir = args[1]!;
    const shown = (x: string) => (isUrl(x) || isS3(x) ? redactUrl(x.split('#')[0]!) : x);
    let token: string | undefined;
    const opened: { close?(): Promise<void> }[] = [];
    const urlNs = async (url: string, readOnly: boolean): Promise<StoreNamespace> => {
      if (isS3(url)) {
        const objects = await openObjectStore(url, { onWarning: (m) => line(io.stderr, `stratadisk: copy: ${m}`) });
        opened.push(objects);
        return new ObjectNamespace(objects, { readOnly, label: redactUrl(url) });
      }
      const inUrl = new URLSearchParams(url.split('#')[1] ?? '').get('token');
      if (inUrl !== null) {
        registerSecret(inUrl);
        line(io.stderr, `stratadisk: copy: ${argvWarning({ what: "the store server's token", argumentName: 'URL#token=', env: 'STRATADISK_TOKEN' })}`);
        return new RemoteNamespace(url, { readOnly, insecure: values.insecure === true });
      }
      token ??= await readSecret({
        what: "the store server's token",
        ...(typeof values['token-file'] === 'string' ? { file: values['token-file'] } : {}),
        env: 'STRATADISK_TOKEN',
        ...(io.stdin ? { stdin: io.stdin as AsyncIterable<Uint8Array> } : {}),
        warn: (m) => line(io.stderr, `stratadisk: copy: ${m}`),
      });
      return new RemoteNamespace(url.split('#')[0]!, { readOnly, insecure: values.insecure === true, ...(token ? { token } : {}) });
    };
    if (!srcUrl) {
      let st;
      try {
        st = statSync(src.dir);
      } catch {
        throw new StrataError('not-found', `No volume at ${src.dir}: the directory does not exist.`);
      }
      if (!st.isDirectory()) throw new StrataError('invalid-argument', `${src.dir} is not a directory; a volume is a directory.`);
      if (!dstUrl && existsReal(dstDir) === realpathSync(src.dir)) throw new StrataError('invalid-argument', `${dstDir} is the source volume itself; copy to another directory.`);
    } else if (dstUrl && sameUrl(src.dir, dstDir)) {
      throw new StrataError('invalid-argument', `${shown(dstDir)} is the source volume itself; copy to another namespace.`);
    }
    const kind = dstUrl ? 'url' : destinationKind(dstDir);
    const srcNs = srcUrl ? await urlNs(src.dir, src.snapshot !== undefined) : new NodeDirNamespace(src.dir, { readOnly: src.snapshot !== undefined });
    const dstNs = dstUrl ? await urlNs(dstDir, false) : undefined;
    let made: NewVolumeDir | undefined;
    if (kind === 'new') made = await prepareVolumeDir(dstDir);
    let bar: Progress | undefined;
    let barPhase: string | undefined;
    let report: CopyReport;
    try {
      try {
        report = await copyVolume(srcNs, dstNs ?? new NodeDirNamespace(dstDir), {
          snapshot: src.snapshot,
          signal,
          ...(values['trust-reused'] === true ? { checkReused: false } : {}),
          onProgress: (done, total, phase) => {
            if (phase !== barPhase || done === 0) {
              bar?.finish();
              bar = progress(phase, total);
              barPhase = phase;
            }
            bar!.update(done);
          },
        });
        bar?.finish();
      } finally {
        for (const o of opened) await o.close?.().catch(() => {});
      }
    } catch (e) {
      bar?.finish();
      const kept = made ? await made.undo() : kind === 'volume' ? `the volume in ${dstDir} is unchanged` : `nothing of the copy was left at ${shown(dstDir)}`;
      throw withKept(e, kept, signal);
    }
    if (values.json) {
      line(io.stdout, JSON.stringify({ source: shown(args[0]!), destination: shown(dstDir), ...report }));
      return 0;
    }
    const linked = report.layers.filter((l) => l.how === 'reused').map((l) => l.target);
    const resumed = report.resumed > 0 ? `, ${report.resumed} kept from an interrupted run` : '';
    line(
      io.stdout,
      `Copied ${shown(args[0]!)} to ${shown(dstDir)} (${report.into === 'new' ? 'a new volume' : 'received into the volume there'}): ${report.layers.length} layer${report.layers.length === 1 ? '' : 's'}, ` +
        `${report.reused} re-linked${linked.length > 0 ? ` (${linked.join(', ')})` : ''}, ${report.copied} copied${resumed}; ${formatBytes(report.bytesMoved)} moved.`,
    );
    for (const r of report.rejected) line(io.stdout, `Not re-linked: layer ${r.layer} of ${shown(dstDir)} has content ID ${r.contentId} but ${r.problem.replace(/^[^:]*: /, '')} It was copied again instead.`);
    if (report.snapshots.length > 0) line(io.stdout, `Snapshots: ${report.snapshots.join(', ')}.`);
    return 0;
  },
};

/** `new` (missing or empty: prepared like `create`), `volume` (holds one), `resume` (an interrupted copy's leftovers). */
function destinationKind(dir: string): 'new' | 'volume' | 'resume' {
  let names: string[];
  try {
    if (!lstatSync(dir).isDirectory()) return 'new'; // prepareVolumeDir says what is wrong
    names = readdirSync(dir);
  } catch {
    return 'new';
  }
  if (names.some((n) => (MANIFEST_SLOTS as readonly string[]).includes(n))) {
    return names.includes(STAGING_MARK) && !hasManifest(dir) ? 'resume' : 'volume';
  }
  return names.includes(STAGING_MARK) ? 'resume' : 'new';
}

function isUrl(x: string): boolean {
  return /^https?:\/\//i.test(x);
}

function isS3(x: string): boolean {
  return x.startsWith('s3://');
}

/** The same namespace: equal URLs without the fragment and trailing slashes. */
function sameUrl(a: string, b: string): boolean {
  const norm = (x: string) => x.split('#')[0]!.replace(/\/+$/, '');
  return norm(a) === norm(b);
}

/** `URL` or `URL@NAME` (a snapshot): the name is split off the end of the path, before any `#`. */
function parseUrlTarget(spec: string): { dir: string; snapshot?: string } {
  const [main, frag] = [spec.split('#')[0]!, spec.includes('#') ? spec.slice(spec.indexOf('#')) : ''];
  const at = main.lastIndexOf('@');
  const name = at > 0 ? main.slice(at + 1) : '';
  if (at > main.indexOf('://') + 3 && main.lastIndexOf('/') < at && SNAPSHOT_NAME.test(name)) return { dir: main.slice(0, at) + frag, snapshot: name };
  return { dir: spec };
}

function existsReal(dir: string): string | undefined {
  try {
    return realpathSync(dir);
  } catch {
    return undefined;
  }
}

/** Does a manifest slot hold anything (a volume whose creation completed)? */
function hasManifest(dir: string): boolean {
  return MANIFEST_SLOTS.some((n) => {
    try {
      return statSync(`${dir}/${n}`).size > 0;
    } catch {
      return false;
    }
  });
}
