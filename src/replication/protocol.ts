/**
 * Wire messages of a replication session: a primary volume's writes streamed to a secondary
 * volume, the same on every transport (src/replication/links/, src/consistency/). The primary
 * numbers every stream message 1, 2, 3, ... per connection; the secondary applies them in that
 * order and acknowledges by number.
 *
 * Everything from the peer is untrusted: `parseToSecondary` and `parseToPrimary` check every
 * field and bound every size before anything uses it; a malformed message closes the session.
 */
import { StrataError, type ErrorCode } from '../errors.js';

/** Carried by `hello`; a secondary refuses another version. */
export const REPLICATION_PROTOCOL = 1;

export const LIMITS = {
  maxString: 1024,
  /** bytes of one write message (a batch of whole blocks) */
  maxIo: 32 << 20,
  /** generations kept in a side's history */
  maxHistory: 64,
  /** largest volume: 2^50 bytes (1 PiB) keeps offsets exact in a double */
  maxSize: 2 ** 50,
} as const;

/** A side's generation identifiers (DRBD's data generation UUIDs): see ./roles.ts. */
export interface Generations {
  /** the data generation this side holds now */
  current: string;
  /** earlier generations, newest first */
  history: string[];
}

export type Mode = 'sync' | 'async';

/** Primary → secondary. */
export type ToSecondary =
  | {
      t: 'hello';
      v: number;
      /** session name (the secondary reports it; one session per secondary at a time) */
      session: string;
      size: number;
      blockSize: number;
      /** the primary volume's uuid */
      uuid: string;
      mode: Mode;
      /** async in a group: apply only up to released cuts */
      gated: boolean;
      gen: Generations;
      /** gated sessions: the last cut released before the previous connection of this session ended (what a secondary still holding cuts from it may apply); 0 none */
      decided: number;
    }
  /** bytes of whole blocks at `offset` */
  | { t: 'w'; n: number; offset: number; data: Uint8Array }
  /** whole blocks read as zeros */
  | { t: 'z'; n: number; offset: number; length: number }
  /** make everything before durable */
  | { t: 'f'; n: number }
  /** consistency cut `cut` falls here in the stream (gated sessions) */
  | { t: 'cut'; n: number; cut: number }
  /** gated sessions: apply everything up to cut `cut` */
  | { t: 'rel'; cut: number }
  /** a resync begins: the secondary is inconsistent until `sync-end` (it keeps a snapshot of its last consistent state) */
  | { t: 'sync-begin'; n: number; blocks: number }
  /** the resync is complete: after this and a flush, the secondary holds generation `gen` */
  | { t: 'sync-end'; n: number; gen: Generations }
  /** the session stops here (freeze or orderly end); the secondary drops what it has not applied */
  /** `released`: gated sessions apply held cuts up to this one, then drop the rest */
  | { t: 'stop'; reason: string; released: number }
  | { t: 'ping' };

/** Secondary → primary. */
export type ToPrimary =
  /** `uuid`: the secondary volume's; `empty`: nothing allocated (a fresh copy needs only the primary's allocated blocks) */
  | { t: 'welcome'; v: number; gen: Generations; consistent: boolean; uuid: string; empty: boolean }
  | { t: 'refuse'; code: ErrorCode; message: string }
  /** `r`: highest stream number received, `a`: applied, `d`: durable, `c`: highest cut fully received */
  | { t: 'ack'; r: number; a: number; d: number; c: number }
  | { t: 'err'; code: ErrorCode; message: string }
  | { t: 'pong' };

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'out-of-range', 'invalid-argument', 'corrupt', 'checksum-mismatch', 'quota', 'locked', 'read-only',
  'frozen', 'timeout', 'unsupported', 'aborted', 'not-found', 'exists', 'closed', 'io', 'permission-denied',
  'split-brain', 'untrusted',
]);

function bad(what: string): StrataError {
  return new StrataError('corrupt', `A replication message is malformed (${what}); the peer is not speaking replication protocol ${REPLICATION_PROTOCOL}. The session is closed.`);
}

type Obj = Record<string, unknown>;

function obj(x: unknown): Obj {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw bad('not an object');
  return x as Obj;
}

function str(o: Obj, k: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length > LIMITS.maxString) throw bad(`field ${k}`);
  return v;
}

function int(o: Obj, k: string, max: number = Number.MAX_SAFE_INTEGER): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw bad(`field ${k}`);
  return v;
}

function bytes(o: Obj, k: string): Uint8Array {
  const v = o[k];
  if (!(v instanceof Uint8Array) || v.length > LIMITS.maxIo) throw bad(`field ${k}`);
  return v;
}

const GEN_ID = /^[0-9a-f]{16}$/;

function gens(x: unknown): Generations {
  const o = obj(x);
  const current = str(o, 'current');
  if (!GEN_ID.test(current)) throw bad('field gen.current');
  const h = o.history;
  if (!Array.isArray(h) || h.length > LIMITS.maxHistory || h.some((g) => typeof g !== 'string' || !GEN_ID.test(g))) throw bad('field gen.history');
  return { current, history: h as string[] };
}

function mode(o: Obj): Mode {
  if (o.mode !== 'sync' && o.mode !== 'async') throw bad('field mode');
  return o.mode;
}

function bool(o: Obj, k: string): boolean {
  if (typeof o[k] !== 'boolean') throw bad(`field ${k}`);
  return o[k] as boolean;
}

function code(o: Obj): ErrorCode {
  const c = str(o, 'code');
  if (!ERROR_CODES.has(c)) throw bad('field code');
  return c as ErrorCode;
}

/** Validate a message the primary sent. */
export function parseToSecondary(x: unknown): ToSecondary {
  const o = obj(x);
  switch (o.t) {
    case 'hello': {
      const size = int(o, 'size', LIMITS.maxSize);
      const blockSize = int(o, 'blockSize', 1 << 20);
      if (blockSize < 512 || (blockSize & (blockSize - 1)) !== 0) throw bad('field blockSize');
      return { t: 'hello', v: int(o, 'v'), session: str(o, 'session'), size, blockSize, uuid: str(o, 'uuid'), mode: mode(o), gated: bool(o, 'gated'), gen: gens(o.gen), decided: int(o, 'decided') };
    }
    case 'w':
      return { t: 'w', n: int(o, 'n'), offset: int(o, 'offset', LIMITS.maxSize), data: bytes(o, 'data') };
    case 'z':
      return { t: 'z', n: int(o, 'n'), offset: int(o, 'offset', LIMITS.maxSize), length: int(o, 'length', LIMITS.maxSize) };
    case 'f':
      return { t: 'f', n: int(o, 'n') };
    case 'cut':
      return { t: 'cut', n: int(o, 'n'), cut: int(o, 'cut') };
    case 'rel':
      return { t: 'rel', cut: int(o, 'cut') };
    case 'sync-begin':
      return { t: 'sync-begin', n: int(o, 'n'), blocks: int(o, 'blocks') };
    case 'sync-end':
      return { t: 'sync-end', n: int(o, 'n'), gen: gens(o.gen) };
    case 'stop':
      return { t: 'stop', reason: str(o, 'reason'), released: int(o, 'released') };
    case 'ping':
      return { t: 'ping' };
    default:
      throw bad('unknown type');
  }
}

/** Validate a message the secondary sent. */
export function parseToPrimary(x: unknown): ToPrimary {
  const o = obj(x);
  switch (o.t) {
    case 'welcome':
      return { t: 'welcome', v: int(o, 'v'), gen: gens(o.gen), consistent: bool(o, 'consistent'), uuid: str(o, 'uuid'), empty: bool(o, 'empty') };
    case 'refuse':
      return { t: 'refuse', code: code(o), message: str(o, 'message') };
    case 'ack':
      return { t: 'ack', r: int(o, 'r'), a: int(o, 'a'), d: int(o, 'd'), c: int(o, 'c') };
    case 'err':
      return { t: 'err', code: code(o), message: str(o, 'message') };
    case 'pong':
      return { t: 'pong' };
    default:
      throw bad('unknown type');
  }
}
