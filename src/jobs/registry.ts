import type { Job, JobInfo } from './job.js';

/**
 * The jobs running in this process on one volume, for listing and for control by id (the CLI's
 * control socket, the worker host). A job leaves the registry when it ends.
 */
export class JobRegistry {
  private readonly jobs = new Map<string, Job>();

  add<J extends Job>(job: J): J {
    this.jobs.set(job.id, job);
    const drop = () => this.jobs.delete(job.id);
    job.done.then(drop, drop);
    return job;
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  list(): JobInfo[] {
    return [...this.jobs.values()].map((j) => j.info());
  }

  /** Cancel every job and wait for them to stop (before closing the volume). */
  async cancelAll(): Promise<void> {
    const all = [...this.jobs.values()];
    for (const j of all) j.cancel();
    await Promise.all(all.map((j) => j.done.catch(() => {})));
  }
}
