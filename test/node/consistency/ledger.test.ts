/**
 * The ledger invariant across Node processes (local socket) and worker_threads (MessagePort):
 * the host owns two volumes on files; every member is a writer moving amounts from its account
 * on volume A to its account on volume B, a record on each. While they run, the host and the
 * members themselves take snapshots. Every snapshot must satisfy the invariant for every writer.
 * The control run is the same with the members acknowledging freezes without holding their
 * writes: it must find violations, which shows the test can fail.
 *
 * The members run the built dist/ (`npm test` builds first); skipped with a message without it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { checkLedger } from '../../../src/bench/ledger.js';
import { GroupHost } from '../../../src/consistency/host.js';
import { listenGroup } from '../../../src/consistency/node-socket.js';
import { attachWorker } from '../../../src/consistency/worker-threads.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';

const fixture = fileURLToPath(new URL('./fixtures/ledger-member.mjs', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../../dist/consistency/node-socket.js', import.meta.url))) && existsSync(fileURLToPath(new URL('../../../dist/bench/ledger.js', import.meta.url)));
if (!built) console.warn('skipping consistency-group process tests: dist/consistency is missing; run `npm run build` first');

const WRITERS = 3;
const RUN_MS = 1200;
const BS = 4096;

interface MemberResult {
  writer: number;
  transfers: number;
  requested: string[];
  failures: string[];
  seen: string[];
  truncations: number;
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function setup(): Promise<{ host: GroupHost; a: Volume; b: Volume; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-ledger-'));
  const a = await Volume.create(new NodeDirNamespace(join(dir, 'a'), { create: true }), { size: 1 << 20, blockSize: BS });
  const b = await Volume.create(new NodeDirNamespace(join(dir, 'b'), { create: true }), { size: 1 << 20, blockSize: BS });
  const host = new GroupHost({ a, b });
  cleanup.push(async () => {
    host.close();
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { host, a, b, dir };
}

/** The host takes a snapshot every ~25 ms while the members run; returns how many it took. */
async function snapshotWhileRunning(host: GroupHost, running: Promise<unknown>): Promise<{ ok: number; failed: string[] }> {
  let done = false;
  void running.finally(() => (done = true));
  let ok = 0;
  const failed: string[] = [];
  // Let every member join first.
  while (!done && host.participants.length < WRITERS) await new Promise((r) => setTimeout(r, 10));
  // Until the first member finishes (an attempt running as a member leaves is aborted, rightly).
  while (!done && host.participants.length === WRITERS) {
    try {
      await host.snapshot();
      ok++;
    } catch (e) {
      failed.push(`${(e as { code?: string }).code}: ${(e as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { ok, failed };
}

async function verify(a: Volume, b: Volume): Promise<{ snapshots: number; violations: string[] }> {
  const violations: string[] = [];
  const names = a.snapshots().map((s) => s.name);
  expect(b.snapshots().map((s) => s.name)).toEqual(names);
  for (const n of names) for (const v of await checkLedger(a.openSnapshot(n), b.openSnapshot(n), WRITERS, BS)) violations.push(`${n}: ${v}`);
  // The live volumes, after everyone stopped, are consistent too.
  expect(await checkLedger(a, b, WRITERS, BS)).toEqual([]);
  return { snapshots: names.length, violations };
}

function runProcess(path: string, writer: number, hold: boolean): Promise<MemberResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, path, JSON.stringify({ writer, hold, ms: RUN_MS, snapshotEvery: 300 })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as MemberResult) : reject(new Error(`member ${writer} exited ${code}: ${err}`))));
  });
}

function runWorker(host: GroupHost, writer: number, hold: boolean): Promise<MemberResult> {
  const w = new Worker(fixture, { workerData: { writer, hold, ms: RUN_MS, snapshotEvery: 300 } });
  attachWorker(host, w);
  return new Promise((resolve, reject) => {
    w.on('message', (m: { type?: string; result?: MemberResult }) => {
      if (m.type === 'result') resolve(m.result!);
    });
    w.on('error', reject);
    w.on('exit', (code) => code !== 0 && reject(new Error(`worker ${writer} exited ${code}`)));
  });
}

describe.skipIf(!built).each([
  ['separate processes over a local socket', 'process'],
  ['worker_threads over MessagePorts', 'worker'],
] as const)('ledger across %s', (_label, kind) => {
  async function run(hold: boolean) {
    const { host, a, b, dir } = await setup();
    let members: Promise<MemberResult[]>;
    if (kind === 'process') {
      const path = join(dir, 'group.sock');
      const server = await listenGroup(host, path);
      cleanup.push(() => new Promise((r) => server.close(() => r())));
      members = Promise.all(Array.from({ length: WRITERS }, (_, w) => runProcess(path, w, hold)));
    } else {
      members = Promise.all(Array.from({ length: WRITERS }, (_, w) => runWorker(host, w, hold)));
    }
    const hostSnaps = await snapshotWhileRunning(host, members);
    const results = await members;
    await host.coordinator.whenIdle();
    const { snapshots, violations } = await verify(a, b);
    return { results, hostSnaps, snapshots, violations };
  }

  it('every snapshot taken while the writers run satisfies the invariant', async () => {
    const { results, hostSnaps, snapshots, violations } = await run(true);
    expect(violations).toEqual([]);
    // The only failures allowed: an attempt under way when a member finished and left.
    for (const f of hostSnaps.failed) expect(f).toMatch(/^aborted: Participant "writer-\d" went away/);
    expect(hostSnaps.failed.length).toBeLessThanOrEqual(1);
    expect(hostSnaps.ok).toBeGreaterThan(5);
    const requested = results.flatMap((r) => r.requested);
    expect(requested.length).toBeGreaterThan(0); // snapshots started by members, too
    expect(snapshots).toBe(hostSnaps.ok + requested.length);
    for (const r of results) {
      expect(r.transfers).toBeGreaterThan(10);
      for (const f of r.failures) expect(f).toBe('aborted');
      // Each member was told every snapshot id taken while it was registered, in order, and ran its post-snapshot work.
      for (const id of r.requested) expect(r.seen).toContain(id);
      expect(r.truncations).toBe(r.seen.length);
    }
  });

  it('control: without holding writes during the freeze, the same test finds violations', async () => {
    const { snapshots, violations } = await run(false);
    expect(snapshots).toBeGreaterThan(5);
    expect(violations.length).toBeGreaterThan(0);
  });
});
