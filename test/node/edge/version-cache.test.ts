import { describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.ts';
import type { VersionRef, VersionSource } from '../../../src/edge/source.ts';
import { createVersionCache } from '../../../src/edge/version-cache.ts';

const id = (n: number) => n.toString(16).padStart(64, '0');
const source = (contentId: string): VersionSource => ({ contentId, image: 'disk', size: 1, read: async () => new Uint8Array(1) });

describe('edge version cache', () => {
  it('opens a version once, shares concurrent opens, and keeps at most maxVersions (least recently used out)', async () => {
    const calls: VersionRef[] = [];
    const open = createVersionCache({
      maxVersions: 2,
      open: async (ref) => {
        calls.push(ref);
        return source('contentId' in ref ? ref.contentId : id(99));
      },
    });
    const [a, b] = await Promise.all([open({ image: 'disk', contentId: id(1) }), open({ image: 'disk', contentId: id(1) })]);
    expect(a).toBe(b);
    expect(calls.length).toBe(1);
    await open({ image: 'disk', contentId: id(2) });
    await open({ image: 'disk', contentId: id(1) }); // 1 is now the most recent
    await open({ image: 'disk', contentId: id(3) }); // 2 goes
    expect(calls.length).toBe(3);
    await open({ image: 'disk', contentId: id(1) });
    expect(calls.length).toBe(3);
    await open({ image: 'disk', contentId: id(2) });
    expect(calls.length).toBe(4);
  });

  it('trusts a tag for tagMaxAgeMs, then looks it up again; a failed open is not remembered', async () => {
    let now = 1000;
    let current = id(7);
    let fail = true;
    const calls: VersionRef[] = [];
    const open = createVersionCache({
      tagMaxAgeMs: 60_000,
      now: () => now,
      open: async (ref) => {
        calls.push(ref);
        if ('contentId' in ref && ref.contentId === id(5) && fail) throw new StrataError('io', 'R2 hiccup');
        return source('tag' in ref ? current : ref.contentId);
      },
    });
    expect((await open({ image: 'disk', tag: 'latest' })).contentId).toBe(id(7));
    current = id(8);
    now += 59_000;
    expect((await open({ image: 'disk', tag: 'latest' })).contentId).toBe(id(7));
    now += 2_000;
    expect((await open({ image: 'disk', tag: 'latest' })).contentId).toBe(id(8));
    expect(calls.filter((c) => 'tag' in c).length).toBe(2);
    await expect(open({ image: 'disk', contentId: id(5) })).rejects.toThrow('R2 hiccup');
    fail = false;
    expect((await open({ image: 'disk', contentId: id(5) })).contentId).toBe(id(5));
  });

  it('an aborted request stops waiting; the shared open goes on for the others', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const open = createVersionCache({ open: async (ref) => (await gate, source((ref as { contentId: string }).contentId)) });
    const ac = new AbortController();
    const first = open({ image: 'disk', contentId: id(1) }, ac.signal);
    const second = open({ image: 'disk', contentId: id(1) });
    ac.abort();
    await expect(first).rejects.toBeDefined();
    release();
    expect((await second).contentId).toBe(id(1));
  });
});
