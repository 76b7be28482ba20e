import { StrataError } from '../errors.js';

/**
 * What a write log does when it reaches its size limit (`maxBytes`): `fold` (the default) folds
 * its oldest segments into the base in the background, keeping about half the limit; `refuse`
 * refuses new writes with `quota` (nothing is written) until the log is folded by hand or the
 * limit raised. Kept in the volume's manifest with the log's requirement (its `settings`).
 */
export interface LogPolicy {
  maxBytes?: number;
  onFull?: 'fold' | 'refuse';
}

export const ON_FULL = ['fold', 'refuse'] as const;
const MiB = 1 << 20;

export function policyFromSettings(settings: Record<string, string | number> | undefined): LogPolicy {
  const p: LogPolicy = {};
  if (typeof settings?.maxBytes === 'number' && settings.maxBytes > 0) p.maxBytes = settings.maxBytes;
  if (settings?.onFull === 'refuse' || settings?.onFull === 'fold') p.onFull = settings.onFull;
  return p;
}

export function settingsOf(p: LogPolicy): Record<string, string | number> {
  const s: Record<string, string | number> = {};
  if (p.maxBytes !== undefined) s.maxBytes = p.maxBytes;
  if (p.onFull !== undefined) s.onFull = p.onFull;
  return s;
}

export function checkPolicy(p: LogPolicy): void {
  if (p.maxBytes !== undefined && (!Number.isSafeInteger(p.maxBytes) || p.maxBytes < 4 * MiB)) {
    throw new StrataError('invalid-argument', `A write log limit of ${p.maxBytes} bytes is too small; give at least 4 MiB.`);
  }
  if (p.onFull !== undefined && !(ON_FULL as readonly string[]).includes(p.onFull)) throw new StrataError('invalid-argument', `onFull must be ${ON_FULL.join(' or ')}.`);
}

/** Segment size for a limit: small enough that folding can get under it (8 segments), 1–64 MiB. */
export function segmentBytesFor(p: LogPolicy, fallback: number): number {
  if (p.maxBytes === undefined) return fallback;
  return Math.max(MiB, Math.min(fallback, Math.floor(p.maxBytes / 8)));
}

export function quotaError(p: LogPolicy, bytes: number): StrataError {
  return new StrataError(
    'quota',
    `The write log of this volume holds ${bytes} bytes, over its limit of ${p.maxBytes} (policy: refuse writes): nothing was written. Fold its oldest part (\`stratadisk journal checkpoint DIR\`) or raise the limit (\`stratadisk journal policy DIR --max-bytes SIZE\`).`,
  );
}
