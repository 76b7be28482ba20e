/**
 * A publish interrupted at every PUT (the put lost, or landed with its reply lost) and then run
 * again: the rerun completes the same version, sends nothing that landed, and a reader never
 * sees a half-published version.
 */
import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { FaultObjectStore } from '../../../src/transfer/fault-objects.js';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { publish, type PublishOptions } from '../../../src/transfer/publish.js';
import { openPublishedVersion } from '../../../src/transfer/published-version.js';
import { KiB, makeVolume, MiB, sameBytes } from './fixtures.js';

const created = new Date('2026-02-03T04:05:06Z');
const opts: PublishOptions = { image: 'disk', created, packBytes: 256 * KiB, parallel: 3 };

async function visibleIsComplete(objects: MemoryObjectStore, model: Uint8Array): Promise<boolean> {
  try {
    const v = await openPublishedVersion(objects, { image: 'disk', tag: 'latest' });
    expect(sameBytes(await v.read(0, model.length), model)).toBe(true);
    return true;
  } catch (e) {
    expect(isStrataError(e, 'not-found'), String(e)).toBe(true);
    return false;
  }
}

describe('publish interrupted at every put, then resumed', () => {
  it('completes the same version without re-sending what landed', async () => {
    const { vol, model } = await makeVolume(4 * MiB + 3000, 64 * KiB, { every: 2 });
    const clean = new FaultObjectStore(new MemoryObjectStore());
    const ref = await publish(clean, vol, opts);
    const total = clean.puts;
    expect(ref.packsWritten).toBeGreaterThan(3);
    expect(total).toBeGreaterThan(10);
    let cases = 0;
    for (let n = 0; n < total; n++) {
      for (const landed of [false, true]) {
        const inner = new MemoryObjectStore();
        const first = new FaultObjectStore(inner, { crashAtPut: n, landed });
        const failure = await publish(first, vol, opts).then(() => null, (e: unknown) => e);
        expect(String(failure)).toMatch(/Injected crash/);
        // the message says exactly what the store holds: no version, or a version maybe untagged
        const key = /Injected crash at put \d+ \(([^)]+)\)/.exec(String(failure))?.[1] ?? '';
        const before = first.putLog.filter((k) => k !== key);
        expect(String(failure)).toMatch(
          before.some((k) => k.startsWith('versions/'))
            ? /Version [0-9a-f]{64} is in .* may not name it yet/
            : key.startsWith('versions/')
              ? /Version [0-9a-f]{64} may or may not have reached/
              : /No new version was made in /,
        );
        const visible = await visibleIsComplete(inner, model);
        // only the tag makes a version visible by name, and it is the last put
        if (visible) expect(n === total - 1 && landed).toBe(true);
        const second = new FaultObjectStore(inner);
        const r = await publish(second, vol, opts);
        expect(r.contentId).toBe(ref.contentId);
        expect(await visibleIsComplete(inner, model)).toBe(true);
        const again = new Set(second.putLog);
        for (const key of first.putLog) {
          if (key.startsWith('leases/') || key.includes('/tags/')) continue;
          expect(again.has(key), `put ${n}${landed ? ' (landed)' : ''}: ${key} was sent again`).toBe(false);
        }
        // only what had not landed is sent: the two runs together send each content object once
        expect(first.putBytes + second.putBytes).toBeLessThanOrEqual(clean.putBytes + 2 * 200);
        cases++;
      }
    }
    expect(cases).toBe(2 * total);
    await vol.close();
  }, 120_000);

  it('a failed put (not a crash) fails the publish, and the rerun completes it', async () => {
    const { vol, model } = await makeVolume(2 * MiB, 64 * KiB);
    const inner = new MemoryObjectStore();
    await expect(publish(new FaultObjectStore(inner, { failPuts: new Set([2]) }), vol, opts)).rejects.toThrow(/Injected failure/);
    await publish(inner, vol, opts);
    expect(await visibleIsComplete(inner, model)).toBe(true);
    await vol.close();
  });
});

describe('a reader during a publish', () => {
  it('sees the previous version or the new one, complete, at every put', async () => {
    const { vol, model } = await makeVolume(2 * MiB, 64 * KiB);
    const inner = new MemoryObjectStore();
    await publish(inner, vol, opts);
    const old = model.slice();
    const { changeBlocks } = await import('./fixtures.js');
    await changeBlocks(vol, model, 64 * KiB, 8, 4);
    const seen = new Set<string>();
    const store = new FaultObjectStore(inner, {
      beforePut: async () => {
        const v = await openPublishedVersion(inner, { image: 'disk', tag: 'latest' });
        const bytes = await v.read(0, v.size);
        if (sameBytes(bytes, old)) seen.add('old');
        else {
          expect(sameBytes(bytes, model)).toBe(true);
          seen.add('new');
        }
      },
    });
    await publish(store, vol, { ...opts, created: new Date('2026-02-04T00:00:00Z'), parallel: 1 });
    expect([...seen]).toEqual(['old']);
    expect(sameBytes(await (await openPublishedVersion(inner, { image: 'disk', tag: 'latest' })).read(0, model.length), model)).toBe(true);
    await vol.close();
  });
});
