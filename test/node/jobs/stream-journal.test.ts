/**
 * The stream job as a journaled job: its record is in the job journal while it runs and gone
 * when it completes or is cancelled; a crash (fault-injecting store, at every few store writes)
 * or a SIGKILL of a `stratadisk stream` process leaves it interrupted, `jobs` lists it, and
 * `resumeJobs` / `stratadisk jobs DIR --resume` finishes it: the volume is then fully local and
 * reads exactly the image. (The child-process case needs dist/: npm run build.)
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startImageServer, type ImageServer } from '../../../src/bench/image-server.js';
import { JobJournal } from '../../../src/jobs/job-journal.js';
import type { Job } from '../../../src/jobs/job.js';
import { resumeJobs } from '../../../src/jobs/resume.js';
import { StreamJob, streamVolume } from '../../../src/jobs/stream.js';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { tempDir } from '../cli/harness.js';
import { Rng, equalBytes, firstDiff } from '../helpers/random.js';

const LONG = process.env.STRATADISK_LONG === '1';
const KiB = 1024;
const BS = 4 * KiB;
const BLOCKS = 64;
const IMG = new Rng(77).bytes(BLOCKS * BS - 300);
IMG.fill(0, 20 * BS, 23 * BS);
const remote = { backoffMs: 1, cacheFlushMs: 1e9 }; // only the job's flushes make the cache durable
let srv: ImageServer;
beforeAll(async () => {
  srv = await startImageServer(IMG);
});
afterAll(async () => {
  await srv.close();
});
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function freshVolume(): Promise<MemoryNamespace> {
  const ns = new MemoryNamespace();
  await (await Volume.createFromImage(ns, srv.url, { blockSize: BS, remote })).close();
  return ns;
}

const streamOpts = { batchBytes: 4 * BS, flushBytes: 8 * BS };

describe('stream job journal', () => {
  it('is recorded while running and removed on completion and on cancel', async () => {
    const ns = await freshVolume();
    const v = await Volume.open(ns, { remote });
    const job = new StreamJob(v, streamOpts);
    job.pause(); // the record goes in before the first fetch, then the job waits
    job.start();
    let records = (await JobJournal.open(ns)).records();
    for (let i = 0; i < 50 && records.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
      records = (await JobJournal.open(ns)).records();
    }
    expect(records.map((r) => [r.id, r.kind, r.params.url])).toEqual([[job.id, 'stream', srv.url]]);
    job.resume();
    await job.done;
    expect((await JobJournal.open(ns)).records()).toEqual([]);
    expect(v.info().remote!.remoteBytes).toBe(0);
    await v.close();

    const ns2 = await freshVolume();
    const v2 = await Volume.open(ns2, { remote });
    const job2 = streamVolume(v2, { ...streamOpts, rateLimit: 8 * BS });
    await new Promise((r) => setTimeout(r, 30));
    job2.cancel();
    await expect(job2.done).rejects.toMatchObject({ code: 'aborted' });
    expect((await JobJournal.open(ns2)).records()).toEqual([]);
    await v2.close();
  });

  const MODES: [CrashMode, TearMode][] = [
    ['drop-unflushed', 'prefix'],
    ['random', 'sectors'],
    ['keep-unflushed', 'sectors'],
  ];

  it('crashed at store writes: reopening lists it, resumeJobs finishes it, the volume is local and exact', async () => {
    const run = async (ns: MemoryNamespace, ctl: FaultController) => {
      let v: Volume | undefined;
      try {
        v = await Volume.open(new FaultNamespace(ns, ctl), { remote });
        await v.read(5 * BS, 3 * BS); // a few blocks local before the job
        await streamVolume(v, streamOpts).done;
        await v.close();
        return false;
      } catch (e) {
        if (!ctl.crashed) throw e;
        return true;
      }
    };
    const probe = new FaultController({});
    expect(await run(await freshVolume(), probe)).toBe(false);
    const total = probe.writes;
    expect(total).toBeGreaterThan(10);
    const failures: string[] = [];
    let resumed = 0;
    for (let k = 0; k < total; k += LONG ? 1 : 2) {
      const [mode, tear] = MODES[k % MODES.length]!;
      const ns = await freshVolume();
      const ctl = new FaultController({ crashAt: k, tear, seed: 31 * k + 5, sectorSize: 512 });
      expect(await run(ns, ctl)).toBe(true);
      await ctl.crash(mode);
      try {
        const listed = (await JobJournal.open(ns)).records();
        if (listed.some((r) => r.kind !== 'stream')) throw new Error(`unexpected records ${JSON.stringify(listed)}`);
        const v = await Volume.open(ns, { remote, deferMerges: true });
        try {
          const jobs: Job[] = [];
          await resumeJobs(v, { onJob: (j) => jobs.push(j) });
          if (jobs.length !== listed.length || jobs.some((j) => j.kind !== 'stream' || j.id !== listed[0]!.id)) throw new Error(`resumed ${jobs.length} job(s) for ${listed.length} record(s)`);
          if (listed.length > 0) {
            resumed++;
            if (v.info().remote!.remoteBytes !== 0) throw new Error(`${v.info().remote!.remoteBytes} bytes still remote after resume`);
          }
          if ((await JobJournal.open(ns)).records().length !== 0) throw new Error('journal not empty after resume');
          const got = await v.read(0, IMG.length);
          if (!equalBytes(got, IMG)) throw new Error(`content differs at byte ${firstDiff(got, IMG)}`);
          const report = await v.check();
          if (!report.ok) throw new Error(`check: ${JSON.stringify(report).slice(0, 300)}`);
        } finally {
          await v.close();
        }
      } catch (e) {
        failures.push(`crash at write ${k}/${total} (${mode}, ${tear}): ${String(e)}`);
        if (failures.length >= 5) break;
      }
    }
    expect(failures).toEqual([]);
    // most crash points fall inside the job (after its record is durable)
    expect(resumed).toBeGreaterThan(total / 4);
  });

  const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
  it.skipIf(!existsSync(BIN))('a killed `stratadisk stream` is listed as interrupted and `jobs --resume` finishes it', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const dir = join(t.dir, 'v');
    const bs = 64 * KiB;
    const img = new Rng(5).bytes(32 * bs);
    const server = await startImageServer(img);
    cleanups.push(() => void server.close());
    // asynchronous: the image server answers from this process meanwhile
    const cli = (...args: string[]) =>
      new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [BIN, ...args], { encoding: 'utf8' }, (e, stdout, stderr) => resolve({ status: e ? Number(e.code ?? 1) : 0, stdout, stderr }));
      });
    const jobsJson = async () => {
      const r = await cli('jobs', dir, '--json');
      expect(r.stderr).toBe('');
      return JSON.parse(r.stdout) as { id: string; kind: string; state: string; done: number; total: number }[];
    };
    expect((await cli('create', dir, '--backing', server.url, '--block-size', '64K')).status).toBe(0);
    const child = spawn(process.execPath, [BIN, 'stream', dir, '--rate', '512K'], { stdio: 'ignore' });
    const exited = new Promise((ok) => child.once('exit', ok));
    cleanups.push(() => child.kill('SIGKILL'));
    // running: listed through the stream process's control socket, with progress
    let rows = await jobsJson();
    for (let i = 0; i < 100 && !(rows.length === 1 && rows[0]!.done > 0); i++) {
      await new Promise((r) => setTimeout(r, 100));
      rows = await jobsJson();
    }
    expect(rows).toMatchObject([{ kind: 'stream', state: 'running' }]);
    const id = rows[0]!.id;
    expect(rows[0]!.done).toBeLessThan(rows[0]!.total);
    child.kill('SIGKILL');
    await exited;
    rows = await jobsJson();
    expect(rows).toMatchObject([{ id, kind: 'stream', state: 'interrupted', total: img.length }]);
    expect(rows[0]!.done).toBeLessThan(img.length);
    const r = await cli('jobs', dir, '--resume');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/1 interrupted stream job/);
    expect((await cli('jobs', dir)).stdout).toMatch(/No jobs/);
    await server.close();
    const v = await Volume.open(new NodeDirNamespace(dir), { readOnly: true, remote: { retries: 0 } });
    try {
      expect(v.info().remote!.remoteBytes).toBe(0);
      expect(equalBytes(await v.read(0, img.length), img)).toBe(true); // offline: the server is gone
    } finally {
      await v.close();
    }
  }, 60_000);
});
