/**
 * The write log through the worker protocol (host and client from source over a MessageChannel,
 * as in in-process.test.ts): enable, marks, point-in-time views, restore with progress and
 * cancel, disable; a journaled volume reopens with its log, and a plain writer is refused.
 */
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { StrataClient, type ProgressEvent } from '../../../src/worker/client.js';
import { exposeEngine } from '../../../src/worker/host.js';
import { memoryBackend, type Backend } from '../../../src/worker/backends.js';
import { Volume } from '../../../src/volume/volume.js';
import { HookedNamespace } from '../helpers/hooked-namespace.js';

const KiB = 1024;
const BS = 4 * KiB;

const channels: MessageChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) {
    c.port1.close();
    c.port2.close();
  }
});

function connect(backend: Backend = memoryBackend()) {
  const ch = new MessageChannel();
  channels.push(ch);
  const engine = exposeEngine(ch.port2 as never, { backends: { memory: backend } });
  return { engine, backend, client: StrataClient.connect(ch.port1 as never) };
}

function fill(length: number, value: number): Uint8Array {
  return new Uint8Array(length).fill(value);
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(StrataError);
  return (e as StrataError).code;
}

describe('write log over the worker protocol', () => {
  it('enables, marks, reads views at points, restores with progress, reopens with the log', async () => {
    const { client, backend } = connect();
    const spec = { backend: 'memory' as const, path: 'j' };
    const v = await client.createVolume(spec, { size: 1 << 20, blockSize: BS });
    expect(await v.journal.status()).toBeNull();
    await expect(code(v.journal.mark('x'))).resolves.toBe('not-found');
    const st = await v.journal.enable();
    expect(st.marks).toBe(0);
    await expect(code(v.journal.enable())).resolves.toBe('exists');

    await v.write(0, fill(8 * BS, 1));
    await v.write(64 * BS, fill(BS, 2));
    const m1 = await v.journal.mark('one');
    expect(m1).toMatchObject({ label: 'one' });
    await v.write(0, fill(2 * BS, 3)); // inside the first run
    await v.write(100 * BS, fill(3 * BS, 4)); // a new run
    await v.writeZeroes(64 * BS, BS);
    await v.flush();

    // views: by mark (text or object), by seq, by time; read and map; closed with the volume
    const at1 = await v.journal.view('mark:one');
    expect(at1.seq).toBe(m1.point);
    expect(await at1.read(0, 8 * BS)).toEqual(fill(8 * BS, 1));
    expect(await at1.read(64 * BS, BS)).toEqual(fill(BS, 2));
    expect(await at1.read(100 * BS, 3 * BS)).toEqual(fill(3 * BS, 0));
    expect((await at1.map()).reduce((n, e) => n + e.length, 0)).toBe(1 << 20);
    expect((await v.journal.view({ mark: 'one' })).seq).toBe(m1.point);
    expect((await v.journal.view({ seq: m1.point })).seq).toBe(m1.point);
    const now = await v.journal.view({ time: new Date(Date.now() + 60_000) });
    expect(await now.read(0, BS)).toEqual(fill(BS, 3));
    await expect(code(v.journal.view('mark:nope'))).resolves.toBe('not-found');
    await expect(code(v.journal.view('yesterday'))).resolves.toBe('invalid-argument');
    await expect(code(v.journal.view({ bogus: 1 } as never))).resolves.toBe('invalid-argument');
    await expect(code(v.journal.view('seq:999999'))).resolves.toBe('out-of-range');

    // restore: a point that is not a mark needs force
    await expect(code(v.journal.restore({ seq: m1.point - 1 }))).resolves.toBe('invalid-argument');
    const events: ProgressEvent[] = [];
    const report = await v.journal.restore('mark:one', { onProgress: (e) => events.push(e) });
    expect(report.to).toBe(m1.point);
    expect(report.blocks).toBe(2 + 3 + 1);
    expect(events.length).toBeGreaterThan(0);
    expect(events.at(-1)).toEqual({ done: report.blocks, total: report.blocks });
    expect(await v.read(0, 8 * BS)).toEqual(fill(8 * BS, 1));
    expect(await v.read(64 * BS, BS)).toEqual(fill(BS, 2));
    expect(await v.read(100 * BS, 3 * BS)).toEqual(fill(3 * BS, 0));
    const labels = (await v.journal.marks()).map((m) => m.label);
    expect(labels[0]).toBe('one');
    expect(labels).toContain(report.undo);
    expect(labels.at(-1)).toBe(`restored-to-${m1.point}`);
    // the restore is itself undoable
    const undo = await v.journal.view({ mark: report.undo });
    expect(await undo.read(0, BS)).toEqual(fill(BS, 3));

    await v.close();
    await expect(code(at1.read(0, 1))).resolves.toBe('closed');

    // a plain writer is refused; reading is fine
    const ns = await backend.open('j', { create: false, readOnly: false });
    await expect(code(Volume.open(ns))).resolves.toBe('unsupported');
    const ro = await Volume.open(ns, { readOnly: true });
    await ro.close();

    // reopened through the worker: the log is attached, marks and data survive
    const again = await client.openVolume(spec);
    expect((await again.journal.marks()).map((m) => m.label)).toEqual(labels);
    expect(await again.read(0, 8 * BS)).toEqual(fill(8 * BS, 1));
    await again.write(0, fill(BS, 9));
    await again.journal.mark('two');
    expect(await (await again.journal.view('mark:one')).read(0, BS)).toEqual(fill(BS, 1));
    expect(await (await again.journal.view('mark:two')).read(0, BS)).toEqual(fill(BS, 9));
    await again.close();

    // read-only: views and marks, no new marks or restores
    const readOnly = await client.openVolume(spec, { readOnly: true });
    expect((await readOnly.journal.status())?.marks).toBe(labels.length + 1);
    expect(await (await readOnly.journal.view('mark:one')).read(0, BS)).toEqual(fill(BS, 1));
    await expect(code(readOnly.journal.mark('no'))).resolves.toBe('read-only');
    await expect(code(readOnly.journal.restore('mark:one'))).resolves.toBe('read-only');
    await readOnly.close();
    await client.close();
  });

  it('disables the log: its views close, a plain writer opens again', async () => {
    const { client, backend } = connect();
    const v = await client.createVolume({ backend: 'memory', path: 'd' }, { size: 1 << 20, blockSize: BS });
    await v.journal.enable();
    await v.write(0, fill(BS, 5));
    await v.journal.mark('a');
    const view = await v.journal.view('mark:a');
    const snap = await v.snapshot('s').then(() => v.openSnapshot('s'));
    await v.journal.disable();
    expect(await v.journal.status()).toBeNull();
    await expect(code(view.read(0, 1))).resolves.toBe('closed');
    expect(await snap.read(0, BS)).toEqual(fill(BS, 5)); // snapshot views stay
    await expect(code(v.journal.disable())).resolves.toBe('not-found');
    await v.close();
    const plain = await Volume.open(await backend.open('d', { create: false, readOnly: false }));
    expect(await plain.read(0, BS)).toEqual(fill(BS, 5));
    await plain.close();
    await client.close();
  });

  it('keeps the log in another namespace of the backend (logPath) and finds it again on open', async () => {
    const { client, backend } = connect();
    const spec = { backend: 'memory' as const, path: 'vol' };
    const v = await client.createVolume(spec, { size: 1 << 20, blockSize: BS });
    await expect(code(v.journal.enable({ logPath: 7 as never }))).resolves.toBe('invalid-argument');
    await v.journal.enable({ logPath: 'vol.log' });
    await v.write(0, fill(BS, 6));
    await v.journal.mark('a');
    await v.write(0, fill(BS, 7));
    await v.close();
    const logNs = await backend.open('vol.log', { create: false, readOnly: true });
    expect((await logNs.list()).length).toBeGreaterThan(0);
    const again = await client.openVolume(spec);
    expect((await again.journal.marks()).map((m) => m.label)).toEqual(['a']);
    expect(await (await again.journal.view('mark:a')).read(0, BS)).toEqual(fill(BS, 6));
    expect(await again.read(0, BS)).toEqual(fill(BS, 7));
    await again.journal.disable();
    expect(await logNs.list()).toEqual([]);
    await again.close();
    await client.close();
  });

  it('keeps the base snapshot of the log while it is on (deleting it would leave no point readable)', async () => {
    const { client } = connect();
    const spec = { backend: 'memory' as const, path: 'b' };
    const v = await client.createVolume(spec, { size: 1 << 20, blockSize: BS });
    await v.journal.enable();
    expect((await v.snapshots()).map((s) => s.name)).toEqual(['journal.base']);
    await expect(code(v.deleteSnapshot('journal.base'))).resolves.toBe('locked');
    await v.close();
    const again = await client.openVolume(spec);
    expect(await again.journal.status()).not.toBeNull();
    await again.journal.disable();
    await again.deleteSnapshot('journal.base'); // an ordinary snapshot once the log is off
    await client.close();
  });

  it('refuses to mirror a journaled volume (the log would stay behind)', async () => {
    const { client } = connect();
    const v = await client.createVolume({ backend: 'memory', path: 'm' }, { size: 1 << 20, blockSize: BS });
    await v.journal.enable();
    await expect(code(v.mirror({ backend: 'memory', path: 'm2' }))).resolves.toBe('unsupported');
    await client.close();
  });

  it('cancels a running restore with an AbortSignal; running it again finishes', async () => {
    // Store writes wait behind a gate once armed; the gate opens only after the engine took the
    // cancel, so the restore sees the abort before its first batch, however loaded the machine.
    let armed = false;
    let blocked: () => void = () => {};
    const hit = new Promise<void>((r) => (blocked = r));
    let open: () => void = () => {};
    const gate = new Promise<void>((r) => (open = r));
    class Gated extends HookedNamespace {
      protected override beforeWrite(): Promise<void> | void {
        if (!armed) return;
        blocked();
        return gate;
      }
    }
    const ns = new Gated();
    const { client, engine } = connect({ isAvailable: () => true, open: async () => ns });
    const cancel = engine.cancel.bind(engine);
    engine.cancel = async (op) => {
      const had = await cancel(op);
      open();
      return had;
    };
    const v = await client.createVolume({ backend: 'memory', path: 'g' }, { size: 1 << 20, blockSize: BS });
    await v.journal.enable();
    for (let b = 0; b < 16; b++) await v.write(b * 2 * BS, fill(BS, 1));
    await v.journal.mark('m');
    for (let b = 0; b < 16; b++) await v.write(b * 2 * BS, fill(BS, 2));
    await v.flush();

    const ctrl = new AbortController();
    const events: ProgressEvent[] = [];
    armed = true;
    const running = v.journal.restore('mark:m', { signal: ctrl.signal, onProgress: (e) => events.push(e) });
    await hit;
    armed = false;
    ctrl.abort();
    await expect(code(running)).resolves.toBe('aborted');
    expect(events).toEqual([]);
    expect(await v.read(0, BS)).toEqual(fill(BS, 2)); // nothing restored yet
    await expect(code(v.journal.restore('mark:m', { signal: AbortSignal.abort() }))).resolves.toBe('aborted');

    const done = await v.journal.restore('mark:m');
    expect(done.blocks).toBe(16);
    for (let b = 0; b < 16; b++) expect(await v.read(b * 2 * BS, BS)).toEqual(fill(BS, 1));
    await client.close();
  });
});
