/**
 * serve-nbd follows a mirror job: at the switch-over the live export moves to the copy while
 * clients stay connected; writes after it land on the copy only.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serveNbd } from '../../../src/interop/nbd/index.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { ok, startCli } from '../cli/harness.js';
import { Rng } from '../helpers/random.js';
import { KiB, MiB, RawClient, have, makeVolume, runOk, tempDir } from './nbd-helpers.js';

const SIZE = 8 * MiB;
const BS = 64 * KiB;
const CMD_READ = 0;
const CMD_WRITE = 1;
const CMD_FLUSH = 3;

/** A client that writes through NBD, a few requests in flight, and keeps the model of what it wrote. */
class Writer {
  writes = 0;
  errors: number[] = [];
  private cookie = 1n;
  constructor(
    readonly c: RawClient,
    readonly model: Uint8Array,
    private readonly rng: Rng,
  ) {}

  /** Four writes to four different blocks (random offset and length inside each), pipelined. */
  async batch(): Promise<{ offset: number; data: Uint8Array }[]> {
    const blocks = new Set<number>();
    while (blocks.size < 4) blocks.add(this.rng.int(SIZE / BS));
    const sent: { offset: number; data: Uint8Array }[] = [];
    for (const b of blocks) {
      const start = this.rng.int(BS - 1);
      const length = 1 + this.rng.int(BS - start);
      const data = this.rng.bytes(length);
      const offset = b * BS + start;
      this.c.request(CMD_WRITE, offset, length, this.cookie++, 0, data);
      sent.push({ offset, data });
    }
    for (let i = 0; i < sent.length; i++) {
      const r = await this.c.simpleReply(20_000);
      if (!r) throw new Error('no reply to a write');
      if (r.error !== 0) this.errors.push(r.error);
    }
    for (const w of sent) this.model.set(w.data, w.offset);
    this.writes += sent.length;
    return sent;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.c.request(CMD_READ, offset, length, this.cookie++);
    const r = await this.c.simpleReply(20_000);
    if (!r || r.error !== 0) throw new Error(`read failed: ${r?.error}`);
    return (await this.c.read(length, 20_000))!;
  }

  async flush(): Promise<void> {
    this.c.request(CMD_FLUSH, 0, 0, this.cookie++);
    const r = await this.c.simpleReply(20_000);
    if (!r || r.error !== 0) throw new Error(`flush failed: ${r?.error}`);
  }
}

async function connect(uri: string): Promise<RawClient> {
  const port = Number(/:(\d+)\//.exec(uri)![1]);
  const c = await RawClient.connect(port);
  await c.hello();
  const g = await c.go('');
  if ('error' in g) throw new Error(`GO failed: ${g.error}`);
  return c;
}

function dataBytes(dir: string): number {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('.'))
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

describe('serve-nbd switches over to a mirror copy', () => {
  const tmp = tempDir('stratadisk-nbd-switch-');
  afterAll(() => tmp.cleanup());

  it('mirror SRC DST while a client writes through NBD: the client sees no error, DST has every write, SRC none after the switch', async () => {
    const src = join(tmp.dir, 'src');
    const dst = join(tmp.dir, 'dst');
    const { live, snap } = await makeVolume(src, SIZE, BS);
    const s = startCli(['serve-nbd', src, '--port', '0', '--insecure']);
    const uri = await s.firstLine();
    const w = new Writer(await connect(uri), live, new Rng(7));
    let stop = false;
    const writing = (async () => {
      while (!stop) await w.batch();
    })();
    try {
      const out = await ok(['mirror', src, dst]);
      expect(out).toMatch(/now serves/);
      stop = true;
      await writing;
      const beforeWrites = w.writes;
      expect(existsSync(join(dst, '.stratadisk.sock'))).toBe(true);
      // The control socket moved with the volume: jobs reach DST's server now.
      expect(await ok(['jobs', dst])).toMatch(/No jobs/);

      // After the switch: SRC takes nothing more (its files do not change), DST takes it all.
      const srcBytes = dataBytes(src);
      const after: { offset: number; data: Uint8Array }[] = [];
      for (let i = 0; i < 8; i++) after.push(...(await w.batch()));
      await w.flush();
      expect(w.errors).toEqual([]);
      expect(w.writes).toBeGreaterThan(beforeWrites);
      expect(dataBytes(src)).toBe(srcBytes);

      // The same connection reads what it wrote, and a new client (qemu-img) reads the model.
      expect(Buffer.compare(await w.read(0, SIZE), Buffer.from(live))).toBe(0);
      if (have('qemu-img')) {
        const raw = join(tmp.dir, 'after.raw');
        await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, raw]);
        expect(Buffer.compare(readFileSync(raw), Buffer.from(live))).toBe(0);
      }
      w.c.close();

      s.stop();
      expect(await s.done).toBe(0);
      const copy = await Volume.open(new NodeDirNamespace(dst, { readOnly: true }), { readOnly: true });
      expect(Buffer.compare(Buffer.from(await copy.read(0, SIZE)), Buffer.from(live))).toBe(0);
      expect(Buffer.compare(Buffer.from(await copy.openSnapshot('s1').read(0, SIZE)), Buffer.from(snap))).toBe(0);
      expect((await copy.check()).ok).toBe(true);
      await copy.close();
      const old = await Volume.open(new NodeDirNamespace(src, { readOnly: true }), { readOnly: true });
      for (const a of after) expect(Buffer.compare(Buffer.from(await old.read(a.offset, a.data.length)), Buffer.from(a.data))).not.toBe(0);
      expect((await old.check()).ok).toBe(true);
      await old.close();
    } finally {
      stop = true;
      await writing.catch(() => {});
      s.stop();
      await s.done;
    }
  });

  it('a write caught behind the switch is retried on the new volume; reads after it see the new volume', async () => {
    const src = join(tmp.dir, 'src2');
    const dst = join(tmp.dir, 'dst2');
    await makeVolume(src, SIZE, BS);
    await makeVolume(dst, SIZE, BS); // stands for the copy (same shape; contents need not match here)
    const server = await serveNbd({ dir: src }, { port: 0, insecure: true });
    const w = new Writer(await connect(server.uri), new Uint8Array(SIZE), new Rng(9));
    const old = server.volume;
    const access = old.beginJob('mirror');
    let resolveNext!: (v: Volume | null) => void;
    const switched = server.switchOver(new Promise<Volume | null>((r) => (resolveNext = r)));
    try {
      const data = new Uint8Array(3000).fill(0x5a);
      let reply: Promise<{ error: number } | null> | undefined;
      await access.exclusive(async () => {
        // queued behind the job's hold of the write lock, as at a mirror's switch-over
        w.c.request(CMD_WRITE, 70_000, data.length, 99n, 0, data);
        reply = w.c.simpleReply(20_000);
        await new Promise((r) => setTimeout(r, 100));
        access.retire('moved for the test');
      });
      access.release();
      resolveNext(await Volume.open(new NodeDirNamespace(dst)));
      await switched;
      expect((await reply)?.error).toBe(0);
      expect(server.volume).not.toBe(old);
      expect([...(await server.volume.read(70_000, data.length))].every((b) => b === 0x5a)).toBe(true);
      expect([...(await old.read(70_000, data.length))].every((b) => b === 0x5a)).toBe(false);
      expect(Buffer.compare(await w.read(60_000, 20_000), Buffer.from(await server.volume.read(60_000, 20_000)))).toBe(0);
    } finally {
      w.c.close();
      await server.close();
    }
  });
});
