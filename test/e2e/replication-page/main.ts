/**
 * A page of test/e2e/replication.test.ts: one OPFS volume in this page's dedicated worker, and
 * `volume.replication` driven through `window.__rep` — replicate to another tab
 * (BroadcastChannel) or to a Node replica server (WebSocket), serve as another tab's replica, a
 * write load that runs until stopped, status, and a digest of the whole volume for comparing.
 */
import { isStrataError } from '../../../src/errors.js';
import { StrataClient, type RemoteVolume, type ReplicaSource, type ReplicateOptions, type ReplicationEvent, type ReplicationTarget } from '../../../src/worker/client.js';

let client: StrataClient | undefined;
let vol: RemoteVolume | undefined;
const events: ReplicationEvent[] = [];
const load = { running: false, written: 0, writtenFrozen: -1, errors: [] as string[], done: Promise.resolve() };
const log = (s: string) => (document.getElementById('log')!.textContent += s + '\n');

/** Open (or create) the OPFS volume at `path`; a worker of a closed tab may still be letting go of its lock. */
async function open(path: string, size: number, blockSize: number): Promise<void> {
  const worker = new Worker(new URL('../../../src/worker/entry.ts', import.meta.url), { type: 'module' });
  client = StrataClient.connect(worker);
  for (let i = 0; ; i++) {
    try {
      vol = await client.openVolume({ backend: 'opfs', path });
      break;
    } catch (e) {
      if (isStrataError(e, 'not-found')) {
        vol = await client.createVolume({ backend: 'opfs', path }, { size, blockSize });
        break;
      }
      if (!isStrataError(e, 'locked') || i > 300) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  log(`opened ${path}`);
}

const onEvent = (e: ReplicationEvent) => void events.push(e);

async function serve(source: ReplicaSource): Promise<void> {
  await vol!.replication.serveReplica(source, { onEvent });
}

async function replicate(target: ReplicationTarget, options: ReplicateOptions) {
  return vol!.replication.replicateTo(target, { ...options, onEvent });
}

/** replicateTo, answering how it failed (code and message) instead of throwing */
async function tryReplicate(target: ReplicationTarget, options: ReplicateOptions): Promise<{ ok: boolean; code?: string; message?: string }> {
  try {
    await vol!.replication.replicateTo(target, options);
    return { ok: true };
  } catch (e) {
    return { ok: false, code: (e as { code?: string }).code, message: String((e as Error)?.message ?? e) };
  }
}

/** xorshift bytes: never all zero, so every block moves as data (its bytes are counted) */
function bytes(seed: number, n: number): Uint8Array {
  const d = new Uint8Array(n);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    d[i] = (x & 0xff) | 1;
  }
  return d;
}

/**
 * Write one block at a time, a seeded choice among blocks [first, first + blocks), until
 * `stopLoad`. With `whenFrozen`, the load asks for the replication status before each write
 * (calls reach the worker in order) and, once frozen, writes into that region instead: so what
 * is out of sync is known exactly (the write in flight at the freeze, plus that region).
 */
function startLoad(seed: number, blocks: number, first = 0, whenFrozen?: { first: number; blocks: number }): void {
  const v = vol!;
  load.running = true;
  load.done = (async () => {
    let x = seed >>> 0;
    let region = { first, blocks };
    while (load.running) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      try {
        if (whenFrozen && region !== whenFrozen && (await v.replication.status()).frozen) {
          region = whenFrozen;
          load.writtenFrozen = 0;
        }
        const block = region.first + ((x >>> 8) % region.blocks);
        await v.write(block * v.blockSize, bytes(x, v.blockSize));
        load.written++;
        if (region === whenFrozen) load.writtenFrozen++;
      } catch (e) {
        load.errors.push(String((e as Error)?.message ?? e));
        return;
      }
    }
    await v.flush();
  })();
}

/** Write the given blocks, one after another, then flush. */
async function writeBlocks(blocks: number[], seed: number): Promise<void> {
  const v = vol!;
  for (const b of blocks) await v.write(b * v.blockSize, bytes(seed + b, v.blockSize));
  await v.flush();
}

async function stopLoad(): Promise<{ written: number; errors: string[] }> {
  load.running = false;
  await load.done;
  return { written: load.written, errors: load.errors };
}

async function digest(): Promise<string> {
  const v = vol!;
  const data = await v.read(0, v.size);
  const h = new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
  return Array.from(h, (b) => b.toString(16).padStart(2, '0')).join('');
}

declare global {
  interface Window {
    __rep: Record<string, unknown>;
  }
}

window.__rep = {
  open,
  serve,
  replicate,
  tryReplicate,
  startLoad,
  writeBlocks,
  stopLoad,
  written: () => load.written,
  /** writes into the frozen region so far (-1: the load has not seen the freeze) */
  writtenFrozen: () => load.writtenFrozen,
  digest,
  map: () => vol!.map(),
  status: () => vol!.replication.status(),
  synced: () => vol!.replication.synced(),
  resume: () => vol!.replication.resume(),
  freeze: () => vol!.replication.freeze(),
  stop: () => vol!.replication.stop(),
  events: () => events.map((e) => ({ ...e })),
  ready: true,
};
