import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Whether a tool is on PATH (tests that need it skip otherwise). */
export function have(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a tool asynchronously: the server under test lives in this process, so a synchronous
 * spawn would block the very event loop that has to answer the tool.
 */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function runOk(cmd: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export function tempDir(prefix = 'stratadisk-nbd-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A volume with a recognisable shape: data, a known-zero range over data, untouched holes, a
 * snapshot `s1` taken half-way (later writes differ from it), and unaligned writes.
 * Returns the expected content of the live volume and of `s1`.
 */
export async function makeVolume(dir: string, size = 8 * MiB, blockSize = 64 * KiB): Promise<{ live: Uint8Array; snap: Uint8Array }> {
  const rng = new Rng(42);
  const v = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size, blockSize });
  const live = new Uint8Array(size);
  const put = async (off: number, data: Uint8Array) => {
    await v.write(off, data);
    live.set(data, off);
  };
  await put(0, rng.bytes(1 * MiB));
  await put(3 * MiB + 123, rng.bytes(300 * KiB));
  await v.writeZeroes(256 * KiB, 256 * KiB);
  live.fill(0, 256 * KiB, 512 * KiB);
  await v.snapshot('s1');
  const snap = live.slice();
  await put(5 * MiB, rng.bytes(512 * KiB));
  await put(100, rng.bytes(1000));
  await v.close();
  return { live, snap };
}

/** A raw socket with exact reads, for speaking (and breaking) the protocol by hand. */
export class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  ended = false;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    const end = () => {
      this.ended = true;
      this.wake();
    };
    socket.on('close', end);
    socket.on('end', end);
    socket.on('error', end);
  }
  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  /** Connect to a TCP port on 127.0.0.1, or to a server (its Unix socket, else its port). */
  static connect(to: number | { port: number; socket?: string }): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const where = typeof to === 'number' ? { port: to, host: '127.0.0.1' } : to.socket !== undefined ? { path: to.socket } : { port: to.port, host: '127.0.0.1' };
      const s = connect(where, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }
  write(b: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }
  /** The next n bytes, or null if the server closed first (or 5 s passed). */
  async read(n: number, timeoutMs = 5000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended || Date.now() > deadline) return null;
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  /** Resolves true once the server has closed the connection (within timeoutMs). */
  async closedByServer(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.ended;
  }
  close(): void {
    this.socket.destroy();
  }

  /** Greeting, client flags (fixed newstyle + no zeroes). Returns the handshake flags. */
  async hello(): Promise<number> {
    const g = await this.read(18);
    if (!g) throw new Error('no greeting');
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(3);
    this.write(flags);
    return g.readUInt16BE(16);
  }
  option(opt: number, data: Uint8Array = new Uint8Array(0)): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(0x49484156454f5054n, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(data.length, 12);
    this.write(Buffer.concat([h, data]));
  }
  /** One option reply: { option, type, data } or null. */
  async optionReply(): Promise<{ option: number; type: number; data: Buffer } | null> {
    const h = await this.read(20);
    if (!h) return null;
    const data = await this.read(h.readUInt32BE(16));
    if (!data) return null;
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data };
  }
  /** NBD_OPT_GO for `name`, reading replies up to the final one. Returns the transmission flags and size, or the error type. */
  async go(name: string, structured = false): Promise<{ size: number; flags: number } | { error: number }> {
    if (structured) {
      this.option(8);
      await this.optionReply();
    }
    const n = Buffer.from(name);
    const d = Buffer.alloc(4 + n.length + 2);
    d.writeUInt32BE(n.length, 0);
    n.copy(d, 4);
    this.option(7, d);
    let size = 0;
    let flags = 0;
    for (;;) {
      const r = await this.optionReply();
      if (!r) throw new Error('connection closed during GO');
      if (r.type === 1) return { size, flags };
      if (r.type & 0x80000000) return { error: r.type };
      if (r.type === 3 && r.data.readUInt16BE(0) === 0) {
        size = Number(r.data.readBigUInt64BE(2));
        flags = r.data.readUInt16BE(10);
      }
    }
  }
  request(type: number, offset: number, length: number, cookie = 1n, flags = 0, payload?: Uint8Array): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(0x25609513, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(cookie, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.write(payload ? Buffer.concat([h, payload]) : h);
  }
  /** A simple reply: { error, cookie } (payload read separately). */
  async simpleReply(timeoutMs?: number): Promise<{ error: number; cookie: bigint } | null> {
    const h = await this.read(16, timeoutMs);
    if (!h) return null;
    if (h.readUInt32BE(0) !== 0x67446698) throw new Error('not a simple reply');
    return { error: h.readUInt32BE(4), cookie: h.readBigUInt64BE(8) };
  }
}
