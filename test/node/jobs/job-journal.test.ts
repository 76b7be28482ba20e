import { describe, expect, it } from 'vitest';
import { JobJournal, type JobRecord } from '../../../src/jobs/job-journal.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { tempDir } from '../cli/harness.js';

const rec = (id: string, kind: string): JobRecord => ({ id, kind, params: {}, started: '2026-01-01T00:00:00.000Z', pid: null, host: null });

describe('job journal', () => {
  it('two jobs of one process committing at once keep both records (one journal per namespace)', async () => {
    const { dir, cleanup } = tempDir();
    const ns = new NodeDirNamespace(dir, { create: true });
    const [a, b] = await Promise.all([JobJournal.open(ns), JobJournal.open(ns)]);
    await Promise.all([a.put(rec('s1', 'stream')), b.put(rec('c1', 'consolidate')), a.put(rec('m1', 'mirror'))]);
    await b.remove('m1');
    // another namespace object over the same directory reads what is on disk
    const again = await JobJournal.open(new NodeDirNamespace(dir));
    expect(again.records().map((r) => r.id).sort()).toEqual(['c1', 's1']);
    cleanup();
  });
});
