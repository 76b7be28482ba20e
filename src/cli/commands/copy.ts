import { lstatSync, readdirSync, statSync } from 'node:fs';
import { StrataError } from '../../errors.js';
import { MANIFEST_SLOTS } from '../../format/manifest.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { copyVolume, type CopyReport } from '../../transfer/copy.js';
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
  usage: 'copy SRC[@NAME] DST [--json]',
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
    '  --json   { into, layers: [{ source, target, contentId, how, bytes }], reused, copied,',
    '           resumed, bytesMoved, bytesTotal, bytesVerified, rejected, snapshots, active, uuid }',
  ].join('\n'),
  options: { ...JSON_OPTION },
  positionals: { min: 2, max: 2 },
  async run({ io, args, values, signal, progress }) {
    const src = parseTarget(args[0]!, true, 'copy');
    const dstDir = args[1]!;
    let st;
    try {
      st = statSync(src.dir);
    } catch {
      throw new StrataError('not-found', `No volume at ${src.dir}: the directory does not exist.`);
    }
    if (!st.isDirectory()) throw new StrataError('invalid-argument', `${src.dir} is not a directory; a volume is a directory.`);
    const kind = destinationKind(dstDir);
    let made: NewVolumeDir | undefined;
    if (kind === 'new') made = await prepareVolumeDir(dstDir);
    let bar: Progress | undefined;
    let report: CopyReport;
    try {
      const srcNs = new NodeDirNamespace(src.dir, { readOnly: src.snapshot !== undefined });
      const dstNs = new NodeDirNamespace(dstDir);
      report = await copyVolume(srcNs, dstNs, {
        snapshot: src.snapshot,
        signal,
        onProgress: (done, total) => {
          bar ??= progress('copy', total);
          bar.update(done);
        },
      });
      bar?.finish();
    } catch (e) {
      bar?.finish();
      const kept = made ? await made.undo() : kind === 'volume' ? `${dstDir} is unchanged` : `nothing was copied to ${dstDir}`;
      throw withKept(e, kept, signal);
    }
    if (values.json) {
      line(io.stdout, JSON.stringify({ source: args[0], destination: dstDir, ...report }));
      return 0;
    }
    const linked = report.layers.filter((l) => l.how === 'reused').map((l) => l.target);
    const resumed = report.resumed > 0 ? `, ${report.resumed} kept from an interrupted run` : '';
    line(
      io.stdout,
      `Copied ${args[0]} to ${dstDir} (${report.into === 'new' ? 'a new volume' : 'received into the volume there'}): ${report.layers.length} layer${report.layers.length === 1 ? '' : 's'}, ` +
        `${report.reused} re-linked${linked.length > 0 ? ` (${linked.join(', ')})` : ''}, ${report.copied} copied${resumed}; ${formatBytes(report.bytesMoved)} moved.`,
    );
    for (const r of report.rejected) line(io.stdout, `Not re-linked: layer ${r.layer} of ${dstDir} has content ID ${r.contentId} but ${r.problem.replace(/^[^:]*: /, '')} It was copied again instead.`);
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
