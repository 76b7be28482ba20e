/**
 * `consistency`: time to take an application-consistent snapshot of a two-volume set with 1, 4
 * and 16 participants — idle (the protocol alone), then each writing ledger transfers (two
 * writes, one per volume) as fast as it can through the host — against the peer: snapshotting
 * the same two volumes directly (Volume.snapshot on each, at once) without freezing anyone,
 * alternated with ours so that both run under the same load (the same writers running).
 *
 * Participants are worker_threads (the built dist/bench/consistency-worker.js); run from the
 * TypeScript sources without a build they are in-process participants on MessageChannel ports
 * instead (the result's name says which). File volumes are node-dir volumes in a temporary
 * directory, where a snapshot includes a flush and a synced manifest commit on both volumes;
 * memory volumes show the cost of the protocol alone.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import { GroupHost } from '../consistency/host.js';
import { portLink } from '../consistency/message-port.js';
import { Participant } from '../consistency/participant.js';
import { attachWorker } from '../consistency/worker-threads.js';
import { MemoryNamespace } from '../store/memory.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { LedgerWriter } from './ledger.js';
import { result, type BenchResult } from './result.js';

export interface ConsistencyBenchOptions {
  quick?: boolean;
  /** participants in worker_threads (default when the built worker script exists) or in-process ports */
  participants?: 'workers' | 'in-process';
  onResult?: (r: BenchResult) => void;
}

const PEER = 'Volume.snapshot of both volumes, nobody frozen (same load)';

interface Members {
  stop(): Promise<number>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

function workerScript(): string | undefined {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.js')) return undefined;
  const file = fileURLToPath(new URL('./consistency-worker.js', import.meta.url));
  return existsSync(file) ? file : undefined;
}

async function startWorkers(host: GroupHost, n: number, idle: boolean, script: string): Promise<Members> {
  const workers = Array.from({ length: n }, (_, writer) => new Worker(script, { workerData: { writer, idle } }));
  const ready = workers.map((w) => new Promise<void>((r, j) => {
    w.on('message', (m: { type?: string }) => m?.type === 'ready' && r());
    w.once('error', j);
  }));
  for (const w of workers) attachWorker(host, w);
  await Promise.all(ready);
  return {
    async stop() {
      const done = workers.map((w) => new Promise<number>((r) => w.on('message', (m: { type?: string; transfers?: number }) => m?.type === 'stopped' && r(m.transfers ?? 0))));
      for (const w of workers) w.postMessage({ type: 'stop' });
      const transfers = await Promise.all(done);
      await Promise.all(workers.map((w) => w.terminate()));
      return transfers.reduce((s, x) => s + x, 0);
    },
  };
}

async function startInProcess(host: GroupHost, n: number, idle: boolean): Promise<Members> {
  let stop = false;
  const loops = await Promise.all(
    Array.from({ length: n }, async (_, writer) => {
      const { port1, port2 } = new MessageChannel();
      host.attach(portLink(port1));
      const p = new Participant(portLink(port2), { name: `bench-${writer}` });
      await p.ready;
      const w = new LedgerWriter(writer, p.volume('a'), p.volume('b'));
      // Wrapped: an async function returning the loop's promise would make Promise.all wait for it.
      const done = (async () => {
        if (idle) while (!stop) await new Promise((r) => setTimeout(r, 5));
        while (!stop) await p.gate.run(() => w.transfer());
        p.close();
        return w.seq;
      })();
      return { done };
    }),
  );
  return {
    async stop() {
      stop = true;
      return (await Promise.all(loops.map((l) => l.done))).reduce((s, x) => s + x, 0);
    },
  };
}

type Store = 'files' | 'memory';

/** Configurations measured: on files, idle then writing participants; in memory (protocol cost alone), idle. */
const CASES: [Store, number, boolean][] = [
  ['files', 1, true], ['files', 4, true], ['files', 16, true],
  ['files', 1, false], ['files', 4, false], ['files', 16, false],
  ['memory', 1, true], ['memory', 4, true], ['memory', 16, true],
];

export async function benchConsistency(opts: ConsistencyBenchOptions = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const runs = quick ? 5 : 30;
  const out: BenchResult[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-cg-'));
  const script = opts.participants === 'in-process' ? undefined : workerScript();
  const kind = script ? 'worker_threads' : 'in-process ports';
  const vols: Record<Store, [Volume, Volume]> = {
    files: [
      await Volume.create(new NodeDirNamespace(join(dir, 'a'), { create: true }), { size: 64 << 20, blockSize: 4096 }),
      await Volume.create(new NodeDirNamespace(join(dir, 'b'), { create: true }), { size: 64 << 20, blockSize: 4096 }),
    ],
    memory: [await Volume.create(new MemoryNamespace(), { size: 64 << 20, blockSize: 4096 }), await Volume.create(new MemoryNamespace(), { size: 64 << 20, blockSize: 4096 })],
  };
  let seq = 0;
  try {
    for (const [store, n, idle] of CASES) {
      const [a, b] = vols[store];
      const host = new GroupHost({ a, b });
      const members = script ? await startWorkers(host, n, idle, script) : await startInProcess(host, n, idle);
      const times: number[] = [];
      const peerTimes: number[] = [];
      const frozen: number[] = [];
      let transfers = 0;
      const t = performance.now();
      try {
        // Alternate with the peer so both see the same load (the same writers running).
        for (let i = 0; i < runs + 2; i++) {
          let t0 = performance.now();
          const s = await host.snapshot({ name: `cg-${seq++}` });
          const ours = performance.now() - t0;
          const name = `plain-${seq++}`;
          t0 = performance.now();
          await Promise.all([a.snapshot(name), b.snapshot(name)]);
          if (i >= 2) {
            times.push(ours);
            peerTimes.push(performance.now() - t0);
            frozen.push(s.frozenMs);
          }
        }
      } finally {
        transfers = await members.stop();
        host.close();
      }
      const elapsed = (performance.now() - t) / 1000;
      const r = result(
        `consistent snapshot of 2 ${store === 'files' ? 'file' : 'memory'} volumes, ${n} ${idle ? 'idle' : 'writing'} participant${n === 1 ? '' : 's'} (${kind})`,
        median(times),
        median(peerTimes),
        'ms',
        PEER,
        undefined,
        `median of ${times.length}; lower is better: ratio = time / the plain snapshots' time; participants frozen ${median(frozen).toFixed(0)} ms (median)${idle ? '' : `; ${Math.round(transfers / elapsed)} ledger transfers/s between back-to-back snapshots`}`,
      );
      out.push(r);
      opts.onResult?.(r);
    }
  } finally {
    for (const [a, b] of Object.values(vols)) {
      await a.close();
      await b.close();
    }
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
