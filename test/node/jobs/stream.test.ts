/**
 * The stream job over a local HTTP server: fetches exactly what is not local, then the volume
 * works with the server gone; pause/resume, cancel keeps what was fetched, rate limit, and
 * streaming while the volume is read and written.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startImageServer, type ImageServer } from '../../../src/bench/image-server.js';
import { StreamJob, streamVolume } from '../../../src/jobs/stream.js';
import type { JobEvent } from '../../../src/jobs/job.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng, equalBytes } from '../helpers/random.js';

const KiB = 1024;
const servers: ImageServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
const fast = { backoffMs: 1, cacheFlushMs: 10 };

async function setup(blocks: number, bs = 16 * KiB, delayMs = 0) {
  const img = new Rng(blocks).bytes(blocks * bs - 100);
  const srv = await startImageServer(img, { delayMs });
  servers.push(srv);
  const ns = new MemoryNamespace();
  const v = await Volume.createFromImage(ns, srv.url, { blockSize: bs, remote: fast });
  return { img, srv, ns, v, bs };
}

describe('stream job', () => {
  it('fetches everything not local, once, with progress; then works offline', async () => {
    const { img, srv, ns, v, bs } = await setup(100);
    await v.read(10 * bs, 5 * bs); // some blocks local already
    await v.write(50 * bs, new Uint8Array(bs).fill(7)); // one overwritten: skipped (no snapshots)
    const bytesBefore = srv.bytes;
    const events: JobEvent[] = [];
    const job = new StreamJob(v, { batchBytes: 8 * bs });
    job.on((e) => events.push(e));
    const total = job.info().progress.total;
    expect(total).toBe(img.length - 5 * bs - bs);
    await job.start().done;
    expect(job.state).toBe('completed');
    expect(job.info().progress.done).toBe(total);
    expect(srv.bytes - bytesBefore).toBe(total);
    expect(v.info().remote!.remoteBytes).toBe(0);
    expect(events.some((e) => e.type === 'state' && e.info.state === 'completed')).toBe(true);
    await v.close();
    await srv.close();
    servers.length = 0;
    const off = await Volume.open(ns, { remote: { ...fast, retries: 0 } });
    const want = img.slice();
    want.fill(7, 50 * bs, 51 * bs);
    expect(equalBytes(await off.read(0, img.length), want)).toBe(true);
    await off.close();
  });

  it('pauses and resumes; cancel keeps what was fetched and a new job fetches only the rest', async () => {
    const { srv, v, bs } = await setup(200, 16 * KiB, 3);
    const job = streamVolume(v, { batchBytes: 2 * bs });
    await new Promise((r) => setTimeout(r, 30));
    job.pause();
    await new Promise((r) => setTimeout(r, 20));
    const at = srv.requests;
    await new Promise((r) => setTimeout(r, 40));
    expect(srv.requests).toBeLessThanOrEqual(at + 1);
    expect(job.state).toBe('paused');
    job.resume();
    await new Promise((r) => setTimeout(r, 20));
    job.cancel();
    await expect(job.done).rejects.toMatchObject({ code: 'aborted' });
    const local = v.info().remote!.localBytes;
    expect(local).toBeGreaterThan(0);
    const bytes = srv.bytes;
    const second = streamVolume(v);
    await second.done;
    expect(srv.bytes - bytes).toBe(v.info().remote!.imageBytes - local);
    await v.close();
  });

  it('honours a rate limit and runs while the volume is read and written', async () => {
    const { img, v, bs } = await setup(64);
    const job = streamVolume(v, { batchBytes: 4 * bs, rateLimit: 4 * 1024 * KiB });
    const model = img.slice();
    const rng = new Rng(3);
    for (let i = 0; i < 20; i++) {
      const off = rng.int(img.length - 2 * bs);
      if (i % 2 === 0) {
        const d = rng.bytes(rng.range(1, 2 * bs));
        await v.write(off, d);
        model.set(d, off);
      } else {
        const n = rng.range(1, 2 * bs);
        expect(equalBytes(await v.read(off, n), model.subarray(off, off + n))).toBe(true);
      }
    }
    await job.done;
    expect(equalBytes(await v.read(0, img.length), model)).toBe(true);
    expect(v.info().remote!.remoteBytes).toBe(0);
    await v.close();
  });

  it('refuses volumes without a remote image', async () => {
    const v = await Volume.create(new MemoryNamespace(), { size: 1 << 20 });
    expect(() => new StreamJob(v)).toThrow(/no remote image/);
    await v.close();
  });
});
