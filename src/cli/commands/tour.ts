import { mkdtempSync, openSync, closeSync, writeSync, ftruncateSync, rmSync, statSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from '../command.js';
import { line, throwIfAborted, type CliIo, type TextSink } from '../io.js';
import { formatBytes } from '../size.js';
import { withVolume } from '../target.js';

const MiB = 1 << 20;
const VOLUME_SIZE = 256 * MiB;

export const tour: Command = {
  name: 'tour',
  summary: 'a guided tour: create, write, snapshot, map, revert, check, export, compare',
  usage: 'tour [DIR]',
  details: [
    'Runs the other commands on a scratch volume and explains what each one showed.',
    'Works in a temporary directory that is removed at the end, or in DIR (kept; must not hold a',
    'volume named "vol" already). Takes a few seconds.',
  ].join('\n'),
  positionals: { min: 0, max: 1 },
  async run({ io, args, signal, runCommand }) {
    const keep = args[0] !== undefined;
    const work = keep ? args[0]! : mkdtempSync(join(tmpdir(), 'stratadisk-tour-'));
    if (keep) mkdirSync(work, { recursive: true, mode: 0o700 });
    const vol = join(work, 'vol');
    const image = join(work, 'source.img');
    const exported = join(work, 'export.img');
    const say = (text = '') => line(io.stdout, text);
    let step = 0;
    const heading = (title: string) => {
      throwIfAborted(signal);
      say();
      say(`== ${++step}. ${title}`);
    };
    // Run a real command line and show its output indented under a `$` prompt.
    const run = async (...argv: string[]): Promise<number> => {
      say(`$ stratadisk ${argv.join(' ').split(work).join('$TOUR')}`);
      const indent = (sink: TextSink): TextSink => ({
        write: (s: string) => sink.write(s.split(work).join('$TOUR').replace(/^(?=.)/gm, '  ')),
      });
      const sub: CliIo = { ...io, stdout: indent(io.stdout), stderr: indent(io.stderr), isTTY: false, signal };
      const code = await runCommand(argv, sub);
      if (code !== 0) say(`  (exit code ${code})`);
      return code;
    };
    const peek = async (spec: 'live' | string, offset: number): Promise<string> =>
      withVolume(vol, true, async (v) => {
        const r = spec === 'live' ? v : v.openSnapshot(spec);
        return printable(await r.read(offset, 24));
      });

    try {
      say(`A tour of stratadisk, in ${work} (shown as $TOUR).`);

      heading('Create a 256 MiB volume with 64 KiB blocks. A volume is a directory.');
      await run('create', vol, '--size', '256M', '--block-size', '64K');

      heading('Import a raw disk image: 256 MiB, but only 5 MiB of it is data; the rest is zeros.');
      writeSourceImage(image);
      await run('import', vol, image);
      say('Zero blocks are not stored, so the volume holds only the 5 MiB of data:');
      await run('info', vol);

      heading('Take a snapshot. It seals the current layer and stacks a new one: O(1), no copying.');
      await run('snapshot', vol, 'installed');

      heading('Overwrite 1 MiB at offset 1 MiB. The new data goes to the new layer (redirect-on-write).');
      writePattern(join(work, 'patch.bin'), MiB, 'CHANGED! ');
      await run('write', vol, '--offset', '1M', join(work, 'patch.bin'));

      heading('The map shows which layer holds each range: depth 0 is the new layer, depth 1 the snapshot\'s.');
      await run('map', vol);

      heading('The snapshot still reads the old bytes; the live volume reads the new ones.');
      say(`  at 1 MiB, live volume:       "${await peek('live', MiB)}"`);
      say(`  at 1 MiB, vol@installed:     "${await peek('installed', MiB)}"`);

      heading('Snapshot again, then revert to the first snapshot: the overwrite is gone.');
      await run('snapshot', vol, 'patched');
      await run('revert', vol, 'installed');
      say(`  at 1 MiB, live volume now:   "${await peek('live', MiB)}"`);
      say(`  at 1 MiB, vol@patched:       "${await peek('patched', MiB)}"  (that snapshot kept it)`);

      heading('Delete the "patched" snapshot: its layer is merged away, the others do not change.');
      await run('delete-snapshot', vol, 'patched');
      await run('snapshots', vol);

      heading('Check every stored block against its checksum (read-only; exit 1 would mean damage).');
      await run('check', vol);

      heading('Export to a sparse raw file: only data extents are written, zero ranges become holes.');
      await run('export', vol, exported);
      const st = statSync(exported);
      say(`  ${exported.replace(work, '$TOUR')}: ${formatBytes(st.size)} long, ${formatBytes(st.blocks * 512)} on disk.`);

      heading('Compare the export with the image we imported: byte for byte the same (exit 0).');
      await run('compare', exported, image);
      say('And the live volume against the snapshot it was reverted to:');
      await run('compare', vol, `${vol}@installed`);

      say();
      say(keep ? `Done. The volume is in ${vol}.` : 'Done. The scratch directory is removed.');
      return 0;
    } finally {
      if (!keep) rmSync(work, { recursive: true, force: true });
    }
  },
};

/** A sparse image: 4 MiB of labelled text at the start and 1 MiB at 200 MiB; zeros elsewhere. */
function writeSourceImage(path: string): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    ftruncateSync(fd, VOLUME_SIZE);
    writeSync(fd, patternBytes(4 * MiB, 'stratadisk tour '), 0, 4 * MiB, 0);
    writeSync(fd, patternBytes(MiB, 'far away data '), 0, MiB, 200 * MiB);
  } finally {
    closeSync(fd);
  }
}

function writePattern(path: string, size: number, text: string): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    writeSync(fd, patternBytes(size, text));
  } finally {
    closeSync(fd);
  }
}

function patternBytes(size: number, text: string): Uint8Array {
  return Buffer.alloc(size, text, 'latin1');
}

function printable(b: Uint8Array): string {
  return Array.from(b, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.')).join('');
}
