import { describe, expect, it } from 'vitest';
import { JOURNAL_RESTORE_PERCENTS, JOURNAL_RESTORE_ROWS, benchJournalRestore } from '../../../src/bench/journal-restore.js';

// Timings are never asserted: only that the benchmark runs, its restores rewrite what changed,
// and it reports numbers for both peers (qemu-img convert and the dm-log-writes replay).
describe('journal restore benchmark (quick)', () => {
  it('reports restore at 1%, 5% and 25% changed against qemu-img convert and a dm-log-writes replay', { timeout: 600_000 }, async () => {
    const out = await benchJournalRestore({ quick: true });
    expect(out.map((r) => r.name)).toEqual(JOURNAL_RESTORE_PERCENTS.flatMap((p) => [JOURNAL_RESTORE_ROWS.convert(p), JOURNAL_RESTORE_ROWS.replay(p)]));
    for (const r of out) {
      for (const x of [r.ours, r.peer, r.ratio]) expect(x, r.name).toBeGreaterThan(0);
      expect(r.unit).toBe('ms');
      expect(r.note).not.toContain('EXPECTED');
      expect(r.note).not.toContain('not run');
      expect(r.note).toContain(r.name.includes('replay') ? 'the replay matches the mark' : 'the converted image matches the mark');
    }
  });
});
