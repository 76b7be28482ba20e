import type { Command, Context } from '../command.js';
import { copyIn, inputFileSize, readFileChunks } from '../copy-in.js';
import { EXIT, line, UsageError } from '../io.js';
import { StrataError } from '../../errors.js';
import { conversionHint, detectStore, type DetectedFormat } from '../../interop/detect.js';
import { holdsVolume, importQcow2 } from '../../interop/qcow2/import.js';
import { NodeFileStore } from '../../store/node-file.js';
import { formatBytes, parseSize } from '../size.js';
import { parseTarget, withVolume } from '../target.js';

export const importCommand: Command = {
  name: 'import',
  summary: 'copy a raw or qcow2 image file into the volume (zero blocks store nothing)',
  usage: 'import DIR FILE [--format raw|qcow2] [--block-size SIZE] [--allow-dir DIR]',
  details: [
    'The format is read from FILE\'s content. Other containers (VMDK, VHD, VHDX, VDI, QED, qcow v1,',
    'Parallels, DMG, LUKS, compressed files, tar/OVA) are refused with `unsupported` and the way to',
    'convert them; --format raw stores a file\'s bytes as they are whatever they look like.',
    '',
    'An import is one change of the volume: it becomes visible all at once when the copy is done.',
    'If it fails, is interrupted (Ctrl-C, exit 130) or the process dies, an existing volume is',
    'exactly as it was (snapshots, their content and the live view), and a volume the import',
    'created is removed (after a crash it is left empty: run the import again).',
    '',
    'raw: FILE\'s bytes replace the start of the live view (bytes 0 to the file\'s size; the rest',
    'stays). FILE must not be larger than the volume. All-zero blocks are not stored.',
    '',
    'qcow2: DIR is created with the image\'s virtual size if it holds no volume (an existing volume',
    'must have the same size). Each backing image becomes a layer sealed by a snapshot named after',
    'its file; internal snapshots become snapshots; the top image\'s content is the live view. In an',
    'existing volume the image replaces the live view (changes since its last snapshot are dropped)',
    'and its snapshots are added to the volume\'s own. Every table of the chain is checked first.',
    '  --format raw|qcow2  import FILE as this format (default: detected from its content)',
    '  --block-size SIZE   block size of a created volume (default: the cluster size, 4K..1M)',
    '  --allow-dir DIR     backing files must lie inside DIR (default: the image\'s directory)',
  ].join('\n'),
  options: { format: { type: 'string' }, 'block-size': { type: 'string' }, 'allow-dir': { type: 'string' } },
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const { args, values } = ctx;
    const { dir } = parseTarget(args[0]!, false, 'import');
    const file = args[1]!;
    const asked = values.format as string | undefined;
    if (asked !== undefined && asked !== 'raw' && asked !== 'qcow2') throw new UsageError(`--format must be raw or qcow2, not "${asked}"`, 'import');
    const size = inputFileSize(file);
    const detected = await detectFile(file);
    const format = chooseFormat(file, asked, detected);
    if (format === 'qcow2') return importQcow2File(ctx, dir, file);
    if (values['block-size'] !== undefined || values['allow-dir'] !== undefined) {
      throw new StrataError('invalid-argument', `--block-size and --allow-dir apply to qcow2 images only; ${file} is imported as raw (create the volume first with \`stratadisk create\`).`);
    }
    return importRawFile(ctx, dir, file, size);
  },
};

async function detectFile(file: string): Promise<DetectedFormat> {
  const store = await NodeFileStore.open(file, { readOnly: true });
  try {
    return await detectStore(store);
  } finally {
    await store.close();
  }
}

/** raw or qcow2, from --format or the content; anything else recognised is refused by name. */
function chooseFormat(file: string, asked: string | undefined, d: DetectedFormat): 'raw' | 'qcow2' {
  if (asked === 'raw') return 'raw';
  if (asked === 'qcow2') {
    if (d.format !== 'qcow2') throw new StrataError('invalid-argument', `${file} is not a qcow2 image (it has no qcow2 header${d.format === 'raw' ? '' : `; it looks like ${d.what}`}).`);
    return 'qcow2';
  }
  if (d.format === 'raw' || d.format === 'qcow2') return d.format;
  throw new StrataError(
    'unsupported',
    `${file} is ${d.what}. stratadisk imports raw and qcow2 images; imported as raw, the volume would hold the container's bytes instead of the disk inside it. ${conversionHint(file, d)} To store the file's bytes as they are anyway${d.format === 'luks' ? ' (right for a disk its guest unlocks itself)' : ''}, pass --format raw.`,
  );
}

/**
 * Runs an import and words its failure: what the volume holds afterwards. `commitStarted` is set
 * once the import began publishing its result (a failure after that may or may not have stored
 * it, and the error says so itself).
 */
async function reporting(ctx: Context, unchanged: string, run: (onCommit: () => void) => Promise<number>): Promise<number> {
  let commitStarted = false;
  try {
    return await run(() => (commitStarted = true));
  } catch (e) {
    if (commitStarted) throw e;
    if (ctx.signal.aborted || (e instanceof StrataError && e.code === 'aborted')) {
      line(ctx.io.stderr, `stratadisk: interrupted; nothing was imported: ${unchanged}.`);
      return EXIT.interrupted;
    }
    if (e instanceof StrataError) throw new StrataError(e.code, `${e.message.replace(/\.?\s*$/, '.')} Nothing was imported: ${unchanged}.`, { cause: e });
    throw e;
  }
}

async function importQcow2File(ctx: Context, dir: string, file: string): Promise<number> {
  const { io, values, signal, progress } = ctx;
  const blockSize = values['block-size'] === undefined ? undefined : parseSize(values['block-size'] as string, '--block-size');
  const existing = holdsVolume(dir);
  const unchanged = existing ? `${dir} is exactly as it was (same snapshots, same content, same live view)` : `no volume was left in ${dir}`;
  return reporting(ctx, unchanged, async (onCommit) => {
    let bar: ReturnType<typeof progress> | undefined;
    let r;
    try {
      r = await importQcow2(dir, file, {
        blockSize,
        allowDir: values['allow-dir'] as string | undefined,
        signal,
        onCommit,
        onProgress: (p) => {
          if (p.phase !== 'copy') return;
          bar ??= progress('import', p.total);
          bar.update(p.done);
        },
      });
    } finally {
      bar?.finish();
    }
    const layers = r.chain.length;
    line(io.stdout, `Imported ${file} (qcow2, ${formatBytes(r.size)}, ${formatBytes(r.clusterSize)} clusters) into ${dir}${r.createdVolume ? ` (created, ${formatBytes(r.blockSize)} blocks)` : ''}; ${formatBytes(r.bytesCopied)} of cluster data copied.`);
    if (layers > 1) {
      line(io.stdout, `Backing chain of ${layers} images, one layer each:`);
      for (const c of r.chain) line(io.stdout, `  ${c.snapshot === null ? '(live volume)' : `snapshot ${c.snapshot}`}  <-  ${c.path} (${c.format})`);
    }
    if (r.internalSnapshots.length > 0) {
      line(io.stdout, `Internal snapshots imported as snapshots:`);
      for (const s of r.internalSnapshots) line(io.stdout, `  ${s.snapshot}${s.snapshot !== s.qcow2 ? `  (qcow2 name "${s.qcow2}")` : ''}`);
    }
    if (!r.createdVolume) line(io.stdout, `The image replaced the live view of ${dir}; the snapshots the volume had are unchanged.`);
    return EXIT.ok;
  });
}

async function importRawFile(ctx: Context, dir: string, file: string, size: number): Promise<number> {
  const { io, signal, progress } = ctx;
  return withVolume(dir, false, (v) =>
    reporting(ctx, `${dir} is exactly as it was (same snapshots, same content, same live view)`, async (onCommit) => {
      if (size > v.size) throw new StrataError('out-of-range', `${file} is ${size} bytes, larger than the volume (${v.size} bytes); create a larger volume.`);
      const bar = progress('import', size);
      let stored = 0;
      try {
        await v.staged(
          'live',
          async () => {
            await copyIn(v, 0, readFileChunks(file), signal, bar);
            stored = v.info().active.dataBlocks * v.blockSize;
          },
          { signal, onCommit },
        );
      } finally {
        bar.finish();
      }
      line(io.stdout, `Imported ${formatBytes(size)} from ${file} into ${dir}; ${formatBytes(stored)} of new data stored (zero blocks are not stored).`);
      return EXIT.ok;
    }),
  );
}
