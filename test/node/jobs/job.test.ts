import { describe, expect, it } from 'vitest';
import { BaseJob, type JobEvent } from '../../../src/jobs/job.ts';

class CountJob extends BaseJob {
  steps = 0;
  constructor(private readonly n: number, opts = {}) {
    super('count', opts);
    this.setTotal(n * 10);
  }
  protected async run(): Promise<void> {
    for (let i = 0; i < this.n; i++) {
      this.steps++;
      await this.step(10);
      await new Promise((r) => setImmediate(r));
    }
  }
}

describe('BaseJob', () => {
  it('runs to completion with progress and state events', async () => {
    const job = new CountJob(20);
    const events: JobEvent[] = [];
    job.on((e) => events.push(e));
    job.start();
    await job.done;
    expect(job.state).toBe('completed');
    expect(job.info().progress).toMatchObject({ done: 200, total: 200 });
    expect(events.some((e) => e.type === 'state' && e.info.state === 'completed')).toBe(true);
    expect(events.at(-1)!.type).toBe('progress');
  });

  it('pauses, resumes and cancels', async () => {
    const job = new CountJob(1_000_000).start();
    await new Promise((r) => setTimeout(r, 5));
    job.pause();
    await new Promise((r) => setTimeout(r, 5));
    const at = job.steps;
    await new Promise((r) => setTimeout(r, 20));
    expect(job.steps).toBeLessThanOrEqual(at + 1);
    expect(job.state).toBe('paused');
    job.resume();
    await new Promise((r) => setTimeout(r, 5));
    expect(job.steps).toBeGreaterThan(at);
    job.cancel();
    await expect(job.done).rejects.toMatchObject({ code: 'aborted' });
    expect(job.state).toBe('cancelled');
  });

  it('cancels from an AbortSignal, even while paused', async () => {
    const ac = new AbortController();
    const job = new CountJob(1_000_000, { signal: ac.signal }).start();
    job.pause();
    ac.abort();
    await expect(job.done).rejects.toMatchObject({ code: 'aborted' });
  });

  it('honours a rate limit with a fake clock', async () => {
    let t = 0;
    class Fast extends BaseJob {
      slept = 0;
      constructor() {
        super('fast', { rateLimit: 1000, now: () => t });
      }
      protected override sleep(ms: number): Promise<void> {
        this.slept += ms;
        t += ms;
        return Promise.resolve();
      }
      protected async run(): Promise<void> {
        for (let i = 0; i < 10; i++) await this.step(500);
      }
    }
    const job = new Fast().start();
    await job.done;
    // 5000 bytes at 1000 B/s: about 5 s of sleeping on the fake clock
    expect(job.slept).toBeGreaterThan(4900);
    expect(job.slept).toBeLessThan(5100);
  });

  it('reports a failure with its code', async () => {
    class Bad extends BaseJob {
      constructor() {
        super('bad');
      }
      protected async run(): Promise<void> {
        throw new Error('boom');
      }
    }
    const job = new Bad().start();
    await expect(job.done).rejects.toMatchObject({ code: 'io' });
    expect(job.state).toBe('failed');
    expect(job.info().error?.message).toMatch(/boom/);
  });
});
