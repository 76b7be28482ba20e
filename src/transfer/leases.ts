/**
 * Leases between publish and gc (README.md, "gc"): each writes `leases/<kind>-<random>`, then
 * lists `leases/`. gc stops with `locked` when a live publish lease is there; publish waits while
 * a live gc lease is there. Leases expire, so a crashed process blocks nobody for long, and are
 * renewed while the work runs.
 */
import { StrataError } from '../errors.js';
import { abortableSleep } from '../util/sleep.js';
import type { ObjectStore } from './object-store.js';
import { LEASES } from './object-names.js';

export type LeaseKind = 'publish' | 'gc';

export interface LeaseOptions {
  /** how long a lease lives without renewal (default 5 minutes) */
  ttlMs?: number;
  /** how often a waiting publish lists again (default 2 s) */
  pollMs?: number;
  now?: () => number;
  signal?: AbortSignal;
  /** called each time a publish finds a live gc lease and waits */
  onWait?: (other: string) => void;
}

const MAX_LEASE_BYTES = 4096;

export class Lease {
  private timer: ReturnType<typeof setInterval> | undefined;
  private renewError: unknown;
  private released = false;

  constructor(
    readonly objects: ObjectStore,
    readonly key: string,
    readonly kind: LeaseKind,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  body(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ kind: this.kind, expires: this.now() + this.ttlMs }));
  }

  async renew(signal?: AbortSignal): Promise<void> {
    await this.objects.put(this.key, this.body(), signal ? { signal } : {});
  }

  startRenewing(): void {
    this.timer = setInterval(() => {
      if (this.released) return;
      this.renew().catch((e: unknown) => (this.renewError ??= e));
    }, Math.max(10, Math.floor(this.ttlMs / 3)));
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** Throws when a renewal failed (the lease may have lapsed). */
  assertHeld(): void {
    if (this.renewError !== undefined) {
      throw new StrataError('locked', `The ${this.kind} lease ${this.key} could not be renewed (${this.renewError instanceof Error ? this.renewError.message : String(this.renewError)}); nothing was made visible. Run it again.`);
    }
  }

  async release(): Promise<void> {
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    await this.objects.delete([this.key]).catch(() => {});
  }
}

/** The live leases of `kind` other than `own`. */
export async function liveLeases(objects: ObjectStore, kind: LeaseKind, now: number, own?: string, signal?: AbortSignal): Promise<string[]> {
  const live: string[] = [];
  for await (const o of objects.list(LEASES, signal)) {
    if (o.key === own || !o.key.startsWith(`${LEASES}${kind}-`)) continue;
    if (o.size > MAX_LEASE_BYTES) continue;
    const bytes = await objects.get(o.key, { offset: 0, length: MAX_LEASE_BYTES }, signal);
    if (bytes === null) continue;
    let expires: unknown;
    try {
      expires = (JSON.parse(new TextDecoder().decode(bytes)) as { expires?: unknown }).expires;
    } catch {
      // a lease being written, or damaged: it counts as live until it is old enough
      expires = (o.modified ?? now) + 5 * 60_000;
    }
    if (typeof expires === 'number' && expires > now) live.push(o.key);
  }
  return live;
}

function randomHex(): string {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return abortableSleep(ms, signal, 'Interrupted while waiting for a gc to finish.');
}

/** Take a lease of `kind` (see the file comment); the caller must `release()` it. */
export async function takeLease(objects: ObjectStore, kind: LeaseKind, options: LeaseOptions = {}): Promise<Lease> {
  const now = options.now ?? Date.now;
  const ttl = options.ttlMs ?? 5 * 60_000;
  const lease = new Lease(objects, `${LEASES}${kind}-${randomHex()}`, kind, ttl, now);
  const other: LeaseKind = kind === 'gc' ? 'publish' : 'gc';
  await lease.renew(options.signal);
  try {
    for (;;) {
      const live = await liveLeases(objects, other, now(), lease.key, options.signal);
      if (live.length === 0) break;
      if (kind === 'gc') {
        throw new StrataError('locked', `A publish is running on ${objects.description} (${live[0]}); gc did nothing. Run it again when the publish is done (a crashed publish's lease expires after its time).`);
      }
      options.onWait?.(live[0]!);
      await sleep(options.pollMs ?? 2000, options.signal);
      await lease.renew(options.signal);
    }
  } catch (e) {
    await lease.release();
    throw e;
  }
  lease.startRenewing();
  return lease;
}
