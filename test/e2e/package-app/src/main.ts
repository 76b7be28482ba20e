/**
 * The app test/e2e/package.test.ts builds against stratadisk installed from its npm tarball. It
 * uses the package only as the README shows: a worker file that is `import 'stratadisk/worker'`,
 * `stratadisk/client` on the page, `stratadisk/v86` for a v86 disk. Each scenario answers with
 * an Outcome (a value, or the error's name, code and message); the test calls them.
 */
import { StrataClient, type RemoteVolume } from 'stratadisk/client';
import { V86Disk, decodeState, encodeState } from 'stratadisk/v86';

type Outcome = { ok: true; value: unknown } | { ok: false; name: string; code: string | undefined; message: string };

async function outcome(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await run() };
  } catch (e) {
    const err = e as Error & { code?: string };
    return { ok: false, name: String(err?.name), code: err?.code, message: String(err?.message) };
  }
}

/** The README's page code: a module worker of the one-line worker file. */
function readmeWorker(): Worker {
  return new Worker(new URL('./strata.worker.ts', import.meta.url), { type: 'module' });
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Writes a pattern at 4 KiB, flushes, snapshots, overwrites, and reads both back. */
async function roundTrip(vol: RemoteVolume): Promise<{ live: boolean; snapshot: boolean }> {
  await vol.write(4096, pattern(10_000, 1));
  await vol.flush();
  await vol.snapshot('first');
  await vol.write(4096, pattern(10_000, 2));
  const snap = await vol.openSnapshot('first');
  return { live: same(await vol.read(4096, 10_000), pattern(10_000, 2)), snapshot: same(await snap.read(4096, 10_000), pattern(10_000, 1)) };
}

const scenarios: Record<string, () => Promise<unknown>> = {
  async memory() {
    const worker = readmeWorker();
    const client = StrataClient.connect(worker);
    try {
      const vol = await client.createVolume({ backend: 'memory', path: 'pkg' }, { size: 1 << 20 });
      return await roundTrip(vol);
    } finally {
      await client.close();
      worker.terminate();
    }
  },

  async opfs() {
    const worker = readmeWorker();
    const client = StrataClient.connect(worker);
    const spec = { backend: 'opfs', path: `package-test/${crypto.randomUUID()}` } as const;
    try {
      const vol = await client.createVolume(spec, { size: 1 << 20 });
      const result = await roundTrip(vol);
      await vol.close();
      const again = await client.openVolume(spec, { readOnly: true });
      const reopened = same(await again.read(4096, 10_000), pattern(10_000, 2));
      await again.close();
      return { ...result, reopened };
    } finally {
      await client.deleteVolume(spec).catch(() => {});
      await client.close();
      worker.terminate();
    }
  },

  /** A v86 hard disk on a worker volume, driven through the calls v86 makes; a state file round trip. */
  async v86() {
    const worker = readmeWorker();
    const client = StrataClient.connect(worker);
    try {
      const vol = await client.createVolume({ backend: 'memory', path: 'vm' }, { size: 4 << 20 });
      const disk = new V86Disk(vol);
      await new Promise<void>((resolve) => {
        disk.onload = () => resolve();
        disk.load();
      });
      if (disk.lastError) throw disk.lastError;
      disk.set(512 * 9, pattern(1024, 7));
      await disk.flush();
      const onVolume = same(await vol.read(512 * 9, 1024), pattern(1024, 7));
      disk.invalidate();
      const throughDisk = await new Promise<Uint8Array>((resolve) => disk.get(512 * 9, 1024, resolve));
      const state = pattern(3 * 4096, 3);
      const decoded = new Uint8Array(await decodeState(await encodeState(state), 'state'));
      await disk.close();
      return { onVolume, throughDisk: same(throughDisk, pattern(1024, 7)), state: same(decoded, state) };
    } finally {
      await client.close();
      worker.terminate();
    }
  },

  /** The form the API docs show: the package's worker entry itself, no worker file of one's own. */
  async direct() {
    const worker = new Worker(new URL('stratadisk/worker', import.meta.url), { type: 'module' });
    const client = StrataClient.connect(worker);
    try {
      const vol = await client.createVolume({ backend: 'memory', path: 'direct' }, { size: 1 << 20 });
      return await roundTrip(vol);
    } finally {
      await client.close();
      worker.terminate();
    }
  },

  /** A worker whose script is not there (HTTP 404). */
  async missing() {
    const worker = new Worker('/no-such-worker.js', { type: 'module' });
    try {
      return await StrataClient.connect(worker).listVolumes('memory');
    } finally {
      worker.terminate();
    }
  },

  /** A worker that throws while starting. */
  async throws() {
    const worker = new Worker(new URL('./throws.worker.ts', import.meta.url), { type: 'module' });
    try {
      return await StrataClient.connect(worker).listVolumes('memory');
    } finally {
      worker.terminate();
    }
  },

  /**
   * A worker terminated after it answered: a call sent just after `terminate()` (in flight when
   * the worker is found gone) and one sent later.
   */
  async terminated() {
    const worker = readmeWorker();
    const client = StrataClient.connect(worker);
    await client.createVolume({ backend: 'memory', path: 'pkg' }, { size: 1 << 20 });
    worker.terminate();
    const inFlight = await outcome(() => client.listVolumes('memory'));
    const later = await outcome(() => client.listVolumes('memory'));
    await client.close();
    return { inFlight, later };
  },

  /** A worker that runs but never serves (as an empty worker chunk does); a short handshake wait. */
  async empty() {
    const worker = new Worker(new URL('./empty.worker.ts', import.meta.url), { type: 'module' });
    try {
      return await StrataClient.connect(worker, { readyTimeoutMs: 1000 }).listVolumes('memory');
    } finally {
      worker.terminate();
    }
  },
};

declare global {
  interface Window {
    packageApp: { run(name: string): Promise<Outcome>; names: string[] };
  }
}

window.packageApp = { run: (name) => outcome(scenarios[name]!), names: Object.keys(scenarios) };
