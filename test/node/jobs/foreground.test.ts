import { describe, expect, it } from 'vitest';
import { ConsolidateJob, planConsolidation, type ConsolidateRequest } from '../../../src/jobs/consolidate.js';
import { ForegroundPacer, IDLE_MS, MIN_SHARE, PAUSE_SLICE_MS } from '../../../src/jobs/foreground.js';
import { BaseJob, type JobEvent, type JobOptions } from '../../../src/jobs/job.js';
import { MirrorJob } from '../../../src/jobs/mirror.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';
import { BS, MemoryNamespace, SIZE, buildChain, compare, randomWrite } from './consolidate-helpers.js';

/** A fake foreground: a counter the test moves, and a clock the test advances. */
function fakes() {
  const f = { ops: 0, t: 0 };
  return { f, activity: () => f.ops, now: () => f.t };
}

describe('ForegroundPacer', () => {
  it('never pauses a job on an idle volume', () => {
    const { f, activity, now } = fakes();
    const p = new ForegroundPacer(activity, now);
    for (let i = 0; i < 10; i++) {
      f.t += 100;
      expect(p.afterWork()).toBe(0);
      p.startWork();
    }
    expect(p.pace).toBe(1);
  });

  it('halves its share after each busy batch down to the floor, pausing d × (1 − share) / share', () => {
    const { f, activity, now } = fakes();
    const p = new ForegroundPacer(activity, now, { minShare: 1 / 8 });
    const pauses: number[] = [];
    const paces: number[] = [];
    for (let i = 0; i < 6; i++) {
      f.ops += 3; // foreground I/O during the batch
      f.t += 10; // the batch took 10 ms
      pauses.push(p.afterWork());
      paces.push(p.pace);
      p.startWork();
    }
    expect(paces).toEqual([1 / 2, 1 / 4, 1 / 8, 1 / 8, 1 / 8, 1 / 8]);
    expect(pauses).toEqual([10, 30, 70, 70, 70, 70]);
  });

  it('restores full speed once the foreground is idle: the share doubles after each quiet batch', () => {
    const { f, activity, now } = fakes();
    const p = new ForegroundPacer(activity, now);
    for (let i = 0; i < 8; i++) {
      f.ops++;
      f.t += 10;
      p.afterWork();
      p.startWork();
    }
    expect(p.pace).toBe(MIN_SHARE);
    const paces: number[] = [];
    const pauses: number[] = [];
    for (let i = 0; i < 5; i++) {
      f.t += 10;
      pauses.push(p.afterWork());
      paces.push(p.pace);
      p.startWork();
    }
    expect(paces).toEqual([1 / 8, 1 / 4, 1 / 2, 1, 1]);
    expect(pauses).toEqual([70, 30, 10, 0, 0]);
  });

  it('carries pauses too short for a timer over to the next batch', () => {
    const { f, activity, now } = fakes();
    const p = new ForegroundPacer(activity, now, { minShare: 1 / 2 });
    f.ops++;
    f.t += 0.4;
    expect(p.afterWork()).toBe(0); // 0.4 ms owed
    p.startWork();
    f.ops++;
    f.t += 0.7;
    expect(p.afterWork()).toBeCloseTo(1.1); // 0.4 + 0.7
  });

  it('busy() tells whether foreground I/O happened since the last look', () => {
    const { f, activity, now } = fakes();
    const p = new ForegroundPacer(activity, now);
    expect(p.busy()).toBe(false);
    f.ops++;
    expect(p.busy()).toBe(true);
    expect(p.busy()).toBe(false);
  });

  it('refuses a share outside (0, 1]', () => {
    const { activity, now } = fakes();
    expect(() => new ForegroundPacer(activity, now, { minShare: 0 })).toThrow(RangeError);
    expect(() => new ForegroundPacer(activity, now, { minShare: 1.5 })).toThrow(RangeError);
  });
});

/**
 * A job of `units` batches of 1000 bytes, each taking `batchMs` on a fake clock; `busy(i)` says
 * whether the volume saw foreground I/O during batch i. Sleeps advance the fake clock and are
 * recorded; foreground I/O keeps going during a pause while `busy` says so for that batch.
 */
class FakeVolumeJob extends BaseJob {
  readonly sleeps: number[] = [];
  /** ms slept after each batch */
  readonly slept: number[] = [];
  readonly paces: (number | undefined)[] = [];
  private readonly f: { ops: number; t: number };
  private batch = 0;

  constructor(
    private readonly units: number,
    private readonly busy: (i: number) => boolean,
    options: JobOptions = {},
    private readonly batchMs = 10,
  ) {
    const f = { ops: 0, t: 0 };
    super('fake', { ...options, now: () => f.t });
    this.f = f;
    this.yieldTo(() => f.ops);
    this.setTotal(units * 1000);
  }

  protected override sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.slept[this.batch] = (this.slept[this.batch] ?? 0) + ms;
    this.f.t += ms;
    if (this.busy(this.batch)) this.f.ops++;
    return Promise.resolve();
  }

  protected async run(): Promise<void> {
    for (this.batch = 0; this.batch < this.units; this.batch++) {
      this.f.t += this.batchMs;
      if (this.busy(this.batch)) this.f.ops++;
      await this.step(1000);
      this.paces.push(this.info().pace);
    }
  }
}

describe('BaseJob yielding to foreground I/O', () => {
  it('slows down under constant foreground load but still finishes (the floor is a share of time)', async () => {
    const job = new FakeVolumeJob(40, () => true);
    job.start();
    await job.done;
    expect(job.state).toBe('completed');
    expect(job.info().progress.done).toBe(40_000);
    expect(job.paces.slice(0, 5)).toEqual([1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 16]);
    expect(Math.min(...(job.paces as number[]))).toBe(MIN_SHARE);
    // at the floor each 10 ms batch is followed by 150 ms of pause: the job works 1/16 of the time
    const slept = job.sleeps.reduce((a, b) => a + b, 0);
    const steady = 40 - 3;
    expect(slept).toBeCloseTo(10 + 30 + 70 + steady * 150);
    expect(Math.max(...job.sleeps)).toBeLessThanOrEqual(PAUSE_SLICE_MS);
  });

  it('goes back to full speed when the foreground stops; a pause ends early once the volume is idle', async () => {
    // batches of 100 ms, busy during batches 0-9 and their pauses, then quiet
    const job = new FakeVolumeJob(20, (i) => i < 10, {}, 100);
    job.start();
    await job.done;
    expect(job.paces.slice(9)).toEqual([1 / 16, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 1, 1, 1, 1, 1]);
    // batch 9's pause: 1500 ms, all busy; batch 10 is still at 1/16 (batch 9's pause was busy)
    // and owes 1500 ms, but the volume is idle, so it stops after IDLE_MS; so do 700 and 300 ms
    // owed at 1/8 and 1/4; 100 ms at 1/2 is slept whole; nothing after that
    expect(IDLE_MS).toBe(250);
    expect(job.slept.slice(9)).toEqual([1500, 250, 250, 250, 100]);
    expect(Math.max(...job.sleeps)).toBe(PAUSE_SLICE_MS);
  });

  it('an explicit rate limit wins over yielding (and reports no pace)', async () => {
    const job = new FakeVolumeJob(10, () => true, { rateLimit: 100_000 });
    job.start();
    await job.done;
    expect(job.paces.every((p) => p === undefined)).toBe(true);
    // 10,000 bytes at 100,000 B/s = 100 ms in all, minus the 10 ms each batch took itself
    expect(job.sleeps.reduce((a, b) => a + b, 0)).toBe(0);
    const slow = new FakeVolumeJob(10, () => true, { rateLimit: 50_000 });
    slow.start();
    await slow.done;
    // 10,000 bytes at 50,000 B/s: 200 ms; the batches took 100 ms, so 100 ms of sleeping
    expect(slow.sleeps.reduce((a, b) => a + b, 0)).toBeCloseTo(100);
    expect(slow.info().rateLimit).toBe(50_000);
  });

  it("foreground: 'ignore' runs at full speed", async () => {
    const job = new FakeVolumeJob(10, () => true, { foreground: 'ignore' });
    job.start();
    await job.done;
    expect(job.sleeps).toEqual([]);
    expect(job.info().pace).toBeUndefined();
  });

  it('refuses a bad policy or share with invalid-argument', () => {
    expect(() => new FakeVolumeJob(1, () => true, { foreground: 'never' as 'ignore' })).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(() => new FakeVolumeJob(1, () => true, { minShare: 0 })).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
  });
});

describe('the volume signal', () => {
  it('counts foreground reads, writes and flushes; a job’s own view reads are not counted', async () => {
    const vol = await Volume.create(new MemoryNamespace(), { size: SIZE, blockSize: BS });
    const seen: number[] = [vol.foregroundOps];
    const look = () => seen.push(vol.foregroundOps);
    await vol.write(0, new Uint8Array(BS).fill(1));
    look();
    await vol.read(0, BS);
    look();
    await vol.writeRanges([{ offset: BS, length: BS }], new Uint8Array(BS));
    look();
    await vol.writeZeroes(0, BS);
    look();
    await vol.flush();
    look();
    expect(new Set(seen).size).toBe(seen.length); // it moved every time
    const access = vol.beginJob('test');
    const before = vol.foregroundOps;
    await access.view.read(0, 2 * BS);
    expect(vol.foregroundOps).toBe(before);
    expect(access.foregroundOps()).toBe(before);
    access.release();
    await vol.close();
  });
});

/** Record the pauses of a real job instead of sleeping (a fake clock that advances 100 ms per look). */
function fakeTime() {
  let t = 0;
  return { now: () => (t += 100), advance: (ms: number) => (t += ms) };
}

describe('jobs on a volume yield to it', () => {
  it('an online consolidation under a busy writer slows to the floor, finishes, and loses no write', async () => {
    const rng = new Rng(7);
    const { vol, model } = await buildChain(new MemoryNamespace(), rng, 1);
    const clock = fakeTime();
    const sleeps: number[] = [];
    class Recorded extends ConsolidateJob {
      protected override sleep(ms: number): Promise<void> {
        sleeps.push(ms);
        clock.advance(ms);
        return Promise.resolve();
      }
    }
    const req: ConsolidateRequest = { op: 'delete-snapshot', name: 's0' };
    const access = vol.beginJob('consolidate');
    const plan = planConsolidation(access.manifest(), req, (id) => access.layer(id).dataBlocks + access.layer(id).zeroBlocks, 'down');
    const job = new Recorded(access, req, plan, { batchBytes: BS, now: clock.now });
    // the writer: one foreground write at every progress event (each step emits one on this clock)
    const writes: Promise<void>[] = [];
    const paces: number[] = [];
    job.on((e: JobEvent) => {
      if (e.type !== 'progress' || e.info.state !== 'running') return;
      paces.push(e.info.pace!);
      writes.push(randomWrite(vol, model, rng, 5000 + writes.length));
    });
    job.start();
    await job.done;
    await Promise.all(writes);
    expect(await job.switched).toBe(true);
    expect(paces.length).toBeGreaterThan(5);
    expect(paces.slice(0, 5)).toEqual([1, 1 / 2, 1 / 4, 1 / 8, 1 / 16]);
    expect(Math.min(...paces)).toBe(MIN_SHARE);
    expect(sleeps.length).toBeGreaterThan(0);
    model.snaps.delete('s0');
    expect(await compare(vol, model)).toBeNull();
    await vol.close();
  });

  it('a consolidation on an idle volume never pauses', async () => {
    const { vol, model } = await buildChain(new MemoryNamespace(), new Rng(8), 1);
    const clock = fakeTime();
    const sleeps: number[] = [];
    class Recorded extends ConsolidateJob {
      protected override sleep(ms: number): Promise<void> {
        sleeps.push(ms);
        return Promise.resolve();
      }
    }
    const req: ConsolidateRequest = { op: 'delete-snapshot', name: 's0' };
    const access = vol.beginJob('consolidate');
    const plan = planConsolidation(access.manifest(), req, (id) => access.layer(id).dataBlocks + access.layer(id).zeroBlocks, 'down');
    const job = new Recorded(access, req, plan, { batchBytes: BS, now: clock.now }).start();
    await job.done;
    expect(sleeps).toEqual([]);
    expect(job.info().pace).toBe(1);
    model.snaps.delete('s0');
    expect(await compare(vol, model)).toBeNull();
    await vol.close();
  });

  it("a flattening mirror's own reads of the live view do not count as foreground I/O", async () => {
    const { vol, model } = await buildChain(new MemoryNamespace(), new Rng(9), 2);
    const clock = fakeTime();
    const sleeps: number[] = [];
    class Recorded extends MirrorJob {
      protected override sleep(ms: number): Promise<void> {
        sleeps.push(ms);
        return Promise.resolve();
      }
    }
    const target = new MemoryNamespace();
    const job = new Recorded(vol.beginJob('mirror'), vol, target, { flatten: true, switchOver: false, batchBytes: BS, now: clock.now, journal: false }).start();
    const paces: number[] = [];
    job.on((e) => {
      if (e.type === 'progress') paces.push(e.info.pace!);
    });
    await job.done;
    expect(paces.length).toBeGreaterThan(3);
    expect(paces.every((p) => p === 1)).toBe(true);
    expect(sleeps).toEqual([]);
    const copy = await Volume.open(target);
    expect(Buffer.from(await copy.read(0, SIZE)).equals(Buffer.from(model.live))).toBe(true);
    await copy.close();
    await vol.close();
  });
});
