/**
 * Helpers for the replication CLI tests: the real `stratadisk` (dist/, `npm run build`) in child
 * processes, the token in their environment, waits on what they print or report (never on a
 * clock: every wait is for a condition, bounded only by the test's timeout).
 */
import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';

export const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
export const built = existsSync(BIN);

export const TOKEN = randomBytes(32).toString('hex');

export type Child = ChildProcessByStdio<null, Readable, Readable>;

export interface Proc {
  child: Child;
  stdout: () => string;
  stderr: () => string;
  /** resolves when stdout+stderr match `re` (rejects if the process exits first) */
  waitFor(re: RegExp): Promise<string>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

const live = new Set<Child>();

/** Kill every process a test started (afterEach). */
export function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}

export function env(token = TOKEN): NodeJS.ProcessEnv {
  return { ...process.env, STRATADISK_REPLICA_TOKEN: token };
}

export function start(args: string[], e: NodeJS.ProcessEnv = env()): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: e });
  live.add(child);
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (s: string) => void; reject: (e: Error) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      const m = w.re.exec(out + '\n' + err);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m[0]);
      }
    }
  };
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    check();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    check();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      live.delete(child);
      // output may still be in the pipes
      setImmediate(() => {
        check();
        for (const w of waiters.splice(0)) w.reject(new Error(`stratadisk ${args.join(' ')} exited ${code} before printing ${w.re}:\n${out}\n${err}`));
        resolve(code);
      });
    }),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (re) =>
      new Promise<string>((resolve, reject) => {
        waiters.push({ re, resolve, reject });
        check();
      }),
    exited,
    kill: (signal = 'SIGINT') => child.kill(signal),
  };
}

/** Run to completion. */
export function run(args: string[], e: NodeJS.ProcessEnv = env()): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: e, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function runOk(args: string[], e?: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(args, e);
  if (r.code !== 0) throw new Error(`stratadisk ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export function runTool(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export interface StatusSession {
  name: string;
  state: string;
  mode: string;
  group: string;
  url: string;
  policy: string;
  lagWrites: number;
  lagBytes: number;
  outOfSyncBytes: number;
  sentBytes: number;
  recoveredBlocks: number;
  resync: { done: number; total: number } | null;
  lastError: { code: string; message: string } | null;
}

export async function status(dir: string): Promise<{ held: boolean; role: string; frozen?: boolean; sessions: StatusSession[] } & Record<string, unknown>> {
  return JSON.parse(await runOk(['replication', 'status', dir, '--json'])) as never;
}

/** Ask for the status until `ok` holds (each ask is a full CLI run: no clock involved). */
export async function until(dir: string, ok: (s: Awaited<ReturnType<typeof status>>) => boolean, what: string, tries = 600): Promise<Awaited<ReturnType<typeof status>>> {
  let s = await status(dir);
  for (let i = 0; i < tries && !ok(s); i++) {
    await new Promise((r) => setTimeout(r, 50));
    s = await status(dir);
  }
  if (!ok(s)) throw new Error(`${dir}: never ${what}: ${JSON.stringify(s)}`);
  return s;
}

/** Both volumes opened read-only hold the same bytes. */
export async function sameVolumes(a: string, b: string): Promise<boolean> {
  const va = await Volume.open(new NodeDirNamespace(a, { readOnly: true }), { readOnly: true });
  const vb = await Volume.open(new NodeDirNamespace(b, { readOnly: true }), { readOnly: true });
  try {
    if (va.size !== vb.size) return false;
    const step = 8 << 20;
    for (let off = 0; off < va.size; off += step) {
      const n = Math.min(step, va.size - off);
      const x = await va.read(off, n);
      const y = await vb.read(off, n);
      if (Buffer.compare(Buffer.from(x), Buffer.from(y)) !== 0) return false;
    }
    return true;
  } finally {
    await va.close();
    await vb.close();
  }
}
