import type { Command } from '../command.js';
import { BATCH } from '../copy-in.js';
import { EXIT, line, throwIfAborted } from '../io.js';
import { formatBytes } from '../size.js';
import { openAnySource, type Source } from '../target.js';

export const compare: Command = {
  name: 'compare',
  summary: 'compare two volumes, snapshots or raw images byte for byte',
  usage: 'compare A B',
  details: [
    'A and B may each be a volume DIR, DIR@NAME, or a raw image file (or block device).',
    'Exit 0: identical; 1: they differ (the first differing offset is printed; different sizes differ);',
    '2: an error (e.g. a missing file).',
  ].join('\n'),
  positionals: { min: 2, max: 2 },
  async run({ io, args, signal, progress }) {
    const a = await openAnySource(args[0]!, 'compare');
    let b: Source;
    try {
      b = await openAnySource(args[1]!, 'compare');
    } catch (e) {
      await a.close();
      throw e;
    }
    try {
      if (a.size !== b.size) {
        line(io.stdout, `Sizes differ: ${a.label} is ${a.size} bytes, ${b.label} is ${b.size} bytes.`);
        return EXIT.different;
      }
      const at = await firstDifference(a, b, signal, progress('compare', a.size));
      if (at === -1) {
        line(io.stdout, `Identical: ${formatBytes(a.size)} (${a.size} bytes).`);
        return EXIT.ok;
      }
      line(io.stdout, `Content differs at offset ${at} (0x${at.toString(16)}).`);
      return EXIT.different;
    } finally {
      await a.close();
      await b.close();
    }
  },
};

/** The first offset where `a` and `b` (of equal size) differ, or -1; reads both in BATCH chunks. */
async function firstDifference(a: Source, b: Source, signal: AbortSignal, bar: { update(n: number): void; finish(): void }): Promise<number> {
  const n = Math.min(BATCH, a.size);
  const x = Buffer.alloc(n);
  const y = Buffer.alloc(n);
  try {
    for (let at = 0; at < a.size; at += n) {
      throwIfAborted(signal);
      const len = Math.min(n, a.size - at);
      const xs = x.subarray(0, len);
      const ys = y.subarray(0, len);
      await Promise.all([a.readInto(at, xs), b.readInto(at, ys)]);
      if (!xs.equals(ys)) {
        for (let i = 0; i < len; i++) if (xs[i] !== ys[i]) return at + i;
      }
      bar.update(at + len);
    }
    return -1;
  } finally {
    bar.finish();
  }
}
