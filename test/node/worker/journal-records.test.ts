/**
 * `volume.journal.records(after, upTo, limit)` over the worker protocol (host and client in one
 * thread): the log's records in bounded pages for a page's time slider, with the range a view
 * may be at; bad ranges are refused with `invalid-argument`.
 */
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { StrataClient, type LogRecordInfo } from '../../../src/worker/client.js';
import { exposeEngine } from '../../../src/worker/host.js';
import { memoryBackend } from '../../../src/worker/backends.js';

const BS = 4096;
const channels: MessageChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) {
    c.port1.close();
    c.port2.close();
  }
});

function connect() {
  const ch = new MessageChannel();
  channels.push(ch);
  exposeEngine(ch.port2 as never, { backends: { memory: memoryBackend() } });
  return StrataClient.connect(ch.port1 as never);
}

describe('journal.records over the worker protocol', () => {
  it('pages through the records in log order, bounded by limit, with marks labelled', async () => {
    const client = connect();
    const v = await client.createVolume({ backend: 'memory', path: 'r' }, { size: 1 << 20, blockSize: BS });
    await v.journal.enable();
    for (let i = 0; i < 5; i++) await v.write(i * BS, new Uint8Array(BS).fill(i + 1));
    const m = await v.journal.mark('five');
    await v.writeZeroes(0, BS);
    await v.flush();

    const all: LogRecordInfo[] = [];
    let after = -1;
    let pages = 0;
    for (;;) {
      const page = await v.journal.records(after, Number.MAX_SAFE_INTEGER, 2);
      expect(page.records.length).toBeLessThanOrEqual(2);
      expect(page.oldest).toBe(-1);
      all.push(...page.records);
      pages++;
      if (!page.more) break;
      after = page.records.at(-1)!.seq;
    }
    const status = (await v.journal.status())!;
    // in log order, each once (a void seq is not a record of its own)
    const seqs = all.map((r) => r.seq);
    expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
    expect(seqs.at(-1)).toBeLessThanOrEqual(status.lastSeq);
    expect(pages).toBe(Math.ceil(all.length / 2));
    expect(all.filter((r) => r.kind === 'write')).toHaveLength(5);
    expect(all.filter((r) => r.kind === 'zero')).toHaveLength(1);
    expect(all.find((r) => r.seq === m.seq)).toMatchObject({ kind: 'mark', label: 'five' });
    const last = await v.journal.records(-1);
    expect(last.lastFlush).toBe(status.lastFlush);
    expect(last.records.every((r) => r.time > 0)).toBe(true);

    // (after, upTo] bounds
    const some = await v.journal.records(1, 3);
    expect(some.records.map((r) => r.seq)).toEqual([2, 3]);
    expect(some.more).toBe(false);
    await client.close();
  });

  it('refuses ranges and limits that are not whole numbers', async () => {
    const client = connect();
    const v = await client.createVolume({ backend: 'memory', path: 'bad' }, { size: 1 << 20, blockSize: BS });
    await expect(v.journal.records(-1)).rejects.toMatchObject({ code: 'not-found' });
    await v.journal.enable();
    const cases: [number, number, number?][] = [[0.5, 3], [0, Number.NaN], [0, 3, 0], [0, 3, 1.5]];
    for (const args of cases) {
      const e = await v.journal.records(...args).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(StrataError);
      expect((e as StrataError).code).toBe('invalid-argument');
    }
    // a limit above the most is cut to it, not refused
    expect((await v.journal.records(-1, 10, 1_000_000)).records.length).toBeLessThanOrEqual(10_000);
    await client.close();
  });
});
