import { lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError, isStrataError } from '../../errors.js';
import { plainPath } from '../../store/node-links.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { nodeError } from '../../store/node-file.js';
import { Salvage, type SalvageView } from '../../volume/salvage.js';
import type { NamespaceLock } from '../../store/store.js';
import { JSON_OPTION, type Command, type Context } from '../command.js';
import { EXIT, line, UsageError } from '../io.js';
import { damaged, formatSalvageReport, totals, type ExportedImage, type SalvageReport } from '../salvage-report.js';
import { parseTarget } from '../target.js';

export const salvage: Command = {
  name: 'salvage',
  summary: 'export everything still readable from a damaged volume, and list what is not',
  usage: 'salvage DIR OUT [--json]',
  details: [
    'Reads DIR without changing it, around whatever damage it finds (a lost manifest slot, missing',
    'or cut layer files, damaged map logs, blocks that fail their checksum), and writes into OUT (a',
    'new directory, or an empty one) sparse raw images: snapshot-NAME.raw per snapshot, live.raw,',
    'and for layers the surviving manifest does not know (newer state): layer-ID.raw (the layer',
    'alone) and newer-ID-on-live.raw (stacked on the live view). Every block is verified against',
    'its checksum; what cannot be read is written as zeros and listed by image, byte range, layer',
    'and reason in OUT/salvage-report.txt and OUT/salvage-report.json.',
    '  --json   print the JSON report instead of the text one',
    'Exit 0: everything was readable; 1: exported, but something was unreadable, uncertain or lost;',
    '2: salvage could not run; 130: interrupted (finished images are kept, and the report says which).',
  ].join('\n'),
  options: { ...JSON_OPTION },
  positionals: { min: 2, max: 2 },
  async run({ io, args, values, signal, progress }) {
    const { dir } = parseTarget(args[0]!, false, 'salvage');
    const out = args[1]!;
    let st;
    try {
      st = statSync(dir);
    } catch {
      throw new StrataError('not-found', `No volume at ${dir}: the directory does not exist.`);
    }
    if (!st.isDirectory()) throw new StrataError('invalid-argument', `${dir} is not a directory; a volume is a directory.`);
    // Keep writers out while reading: a block rewritten meanwhile would look damaged. On
    // read-only media nobody can write anyway, so a lock that cannot be taken is only noted.
    let lock: NamespaceLock | undefined;
    let unlocked: string | undefined;
    try {
      lock = await new NodeDirNamespace(dir).lock();
    } catch (e) {
      if (isStrataError(e, 'locked')) throw new StrataError('locked', `Salvage reads the volume while nothing writes to it, or blocks being rewritten would look damaged. ${e.message}`, { cause: e });
      unlocked = `Could not take the writer lock (${(e as Error).message}); had a writer run during salvage, blocks it rewrote could be reported unreadable.`;
    }
    try {
      prepareOut(out);
      return await salvageInto(dir, out, unlocked, { io, values, signal, progress });
    } finally {
      await lock?.release();
    }
  },
};

async function salvageInto(dir: string, out: string, unlocked: string | undefined, { io, values, signal, progress }: Pick<Context, 'io' | 'values' | 'signal' | 'progress'>): Promise<number> {
  const s = await Salvage.open(new NodeDirNamespace(dir, { readOnly: true }));
  try {
    if (s.views.length === 0) throw new StrataError('not-found', `Nothing to salvage in ${dir}: ${s.survey.problems.join(' ') || 'no manifest and no layer files.'}`);
    const report: SalvageReport = { source: dir, out, complete: false, notes: unlocked ? [unlocked] : [], ...s.survey, exported: [], notExported: [], zeroedBytes: 0, uncertainBytes: 0 };
    const total = s.views.reduce((n, v) => n + s.dataBytes(v), 0);
    const bar = progress('salvage', total);
    let done = 0;
    let failure: unknown = null;
    try {
      for (const view of s.views) {
        report.exported.push(await exportOne(s, view, out, (bytes) => bar.update((done += bytes)), signal));
      }
      report.complete = true;
    } catch (e) {
      failure = e;
      const why = isStrataError(e, 'aborted') ? 'interrupted (Ctrl-C) before it was written' : `not written: ${(e as Error).message}`;
      const written = new Set(report.exported.map((x) => x.file));
      for (const v of s.views) if (!written.has(v.file)) report.notExported.push({ kind: v.kind, name: v.name, file: v.file, reason: why });
    } finally {
      bar.finish();
    }
    Object.assign(report, totals(report.exported));
    const text = formatSalvageReport(report);
    let reportPath = join(out, 'salvage-report.txt');
    try {
      await writeReport(out, report, text);
    } catch (e) {
      if (failure === null) throw e;
      reportPath = `not written either (${(e as Error).message}); the text report follows on stderr`;
      line(io.stderr, text);
    }
    const kept = report.exported.length === 0 ? 'nothing finished' : `${report.exported.length} finished image(s): ${report.exported.map((x) => x.file).join(', ')}`;
    if (failure !== null) {
      if (isStrataError(failure, 'aborted')) {
        line(io.stderr, `stratadisk: salvage interrupted: kept ${kept} in ${out}; not exported: ${report.notExported.map((x) => x.file).join(', ')}. The report is ${reportPath}; run salvage again into an empty directory to export everything.`);
        return EXIT.interrupted;
      }
      const code = isStrataError(failure) ? failure.code : 'io';
      throw new StrataError(code, `Salvage stopped: ${(failure as Error).message} It kept ${kept} in ${out}; the report is ${reportPath}.`, { cause: failure });
    }
    line(io.stdout, values.json ? JSON.stringify(report, null, 2) : text);
    return damaged(report) ? EXIT.different : EXIT.ok;
  } finally {
    await s.close();
  }
}

/** OUT must be new (created 0700) or an empty directory, not a link, so salvaged images never mix with other files or land elsewhere. */
function prepareOut(out: string): void {
  let st;
  try {
    st = lstatSync(plainPath(out)); // `out/` would resolve a link at out
  } catch {
    try {
      mkdirSync(out, { mode: 0o700 });
    } catch (e) {
      throw new StrataError('not-found', `Cannot create ${out}: ${(e as Error).message}`, { cause: e });
    }
    return;
  }
  if (st.isSymbolicLink()) throw new StrataError('unsafe-path', `${out} is a symbolic link; salvaged images are written only into a real directory, never through a link. Give the directory itself.`);
  if (!st.isDirectory()) throw new UsageError(`${out} exists and is not a directory; give a new or empty directory for the salvaged images`, 'salvage');
  if (readdirSync(out).length > 0) throw new UsageError(`${out} is not empty; give a new or empty directory for the salvaged images`, 'salvage');
}

/** Write one image under a temporary name, renamed once complete (an interrupted one is removed). */
async function exportOne(s: Salvage, view: SalvageView, out: string, onProgress: (bytes: number) => void, signal: AbortSignal): Promise<ExportedImage> {
  const path = join(out, view.file);
  const partial = `${path}.partial`;
  const fh = await open(partial, 'wx', 0o600).catch((e: unknown) => {
    throw nodeError(e, `create ${partial}`, true);
  });
  let ok = false;
  try {
    const result = await s.exportView(view, (offset, data) => writeAll(fh, data, offset, partial), onProgress, signal);
    await fileOp(() => fh.truncate(view.size), `size ${partial}`);
    await fileOp(() => fh.sync(), `sync ${partial}`);
    await fh.close();
    await fileOp(() => rename(partial, path), `rename ${partial} to ${view.file}`);
    ok = true;
    return { kind: view.kind, name: view.name, file: view.file, size: view.size, ...result, ...(view.note ? { note: view.note } : {}) };
  } finally {
    if (!ok) {
      await fh.close().catch(() => {});
      await unlink(partial).catch(() => {});
    }
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array, offset: number, path: string): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await fileOp(() => fh.write(data, done, data.length - done, offset + done), `write ${path}`);
    done += bytesWritten;
  }
}

/** Run a file operation, turning a Node error into a StrataError with a code (ENOSPC is `quota`). */
async function fileOp<T>(op: () => Promise<T>, action: string): Promise<T> {
  try {
    return await op();
  } catch (e) {
    throw nodeError(e, action, true);
  }
}

async function writeReport(out: string, report: SalvageReport, text: string): Promise<void> {
  for (const [name, body] of [
    ['salvage-report.json', JSON.stringify(report, null, 2) + '\n'],
    ['salvage-report.txt', text + '\n'],
  ] as const) {
    const path = join(out, name);
    // 'wx': OUT was empty, so the report is new; a link put there meanwhile is not followed
    const fh = await fileOp(() => open(path, 'wx', 0o600), `create ${path}`);
    try {
      await fileOp(() => fh.writeFile(body), `write ${path}`);
      await fileOp(() => fh.sync(), `sync ${path}`);
    } finally {
      await fh.close();
    }
  }
}
