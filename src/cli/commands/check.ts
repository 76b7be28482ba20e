import { JSON_OPTION, type Command } from '../command.js';
import { EXIT, line, throwIfAborted } from '../io.js';
import { formatBytes } from '../size.js';
import { parseTarget, withVolume } from '../target.js';

export const check: Command = {
  name: 'check',
  summary: 'verify every stored block against its checksum',
  usage: 'check DIR [--json]',
  details: [
    'Opens read-only: reports problems, never repairs.',
    'Also reports newer state the manifest does not know (a lost manifest slot: snapshots or changes lost).',
    'Exit 0: no problems; 1: problems found (listed; `stratadisk salvage DIR OUT` exports what is readable);',
    '2: the check could not run (e.g. unreadable manifest; `salvage` reads around that too).',
    '  --json   the CheckReport: { ok, layers, blocksChecked, bytesChecked, problems: [{ layer, block, code, message }] }',
  ].join('\n'),
  options: { ...JSON_OPTION },
  positionals: { min: 1, max: 1 },
  async run({ io, args, values, signal, progress }) {
    const { dir } = parseTarget(args[0]!, false, 'check');
    return withVolume(dir, true, async (v) => {
      const total = v.info().layers.reduce((n, l) => n + l.dataBlocks, 0);
      const bar = progress('check', total * v.blockSize);
      let report;
      try {
        // The progress callback is the one hook inside the check loop; throwing there cancels it.
        report = await v.check((done) => {
          throwIfAborted(signal);
          bar.update(done * v.blockSize);
        });
      } finally {
        bar.finish();
      }
      if (values.json) {
        line(io.stdout, JSON.stringify(report, null, 2));
      } else if (report.ok) {
        line(io.stdout, `OK: ${report.layers} layer(s), ${report.blocksChecked} data blocks (${formatBytes(report.bytesChecked)}) match their checksums.`);
      } else {
        line(io.stdout, `${report.problems.length} problem(s) in ${dir}:`);
        for (const p of report.problems) line(io.stdout, `  ${p.layer}${p.block === undefined ? '' : ` block ${p.block}`}: ${p.code}: ${p.message}`);
        line(io.stdout, `To export every snapshot and the live view as far as they are readable (and the newer state, if any): stratadisk salvage ${dir} OUT`);
      }
      return report.ok ? EXIT.ok : EXIT.different;
    });
  },
};
