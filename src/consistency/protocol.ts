/**
 * Wire messages of a consistency group, the same on every transport (same thread, MessagePort,
 * BroadcastChannel, worker_threads, a local socket). A member (participant) talks to the group's
 * host, which runs the coordinator and owns the group's volumes: the coordination messages
 * (freeze, thaw, post-snapshot) and the members' block I/O share one link, so a member's writes
 * and its "frozen" acknowledgement reach the host in order.
 *
 * Everything that arrives from another thread, tab or process is untrusted: `parseToHost` and
 * `parseToMember` check every field and bound every size before anything uses it.
 */
import { StrataError, type ErrorCode } from '../errors.js';

/** Protocol version carried by `hello`; a host refuses members of another version. */
export const PROTOCOL_VERSION = 1;

/** Bounds on what a message may carry. */
export const LIMITS = {
  /** names, reasons, error messages */
  maxString: 1024,
  /** bytes of one write or read request */
  maxIo: 32 << 20,
  /** volumes in one group */
  maxVolumes: 64,
  /** freeze limits a host may ask for */
  maxLimitMs: 3_600_000,
} as const;

/** What the host tells a member about one volume of the set. */
export interface GroupVolumeInfo {
  name: string;
  size: number;
  blockSize: number;
}

/** A snapshot of every volume of the set, taken while every participant was frozen. */
export interface SetSnapshot {
  /** the snapshot's id: every volume of the set has a snapshot of this name */
  id: string;
  /** the volumes snapshotted (names in the group) */
  volumes: string[];
  /** participants that were frozen for it */
  participants: number;
  /** milliseconds from sending the freeze to sending the thaw */
  frozenMs: number;
}

/** Member → host. */
export type ToHost =
  | { t: 'hello'; v: number; name: string }
  | { t: 'prepared'; attempt: number }
  | { t: 'frozen'; attempt: number }
  | { t: 'veto'; attempt: number; reason: string }
  | { t: 'beat' }
  | { t: 'bye' }
  | { t: 'snapshot'; req: number; name?: string }
  | { t: 'write'; req: number; vol: string; offset: number; data: Uint8Array }
  | { t: 'zero'; req: number; vol: string; offset: number; length: number }
  | { t: 'flush'; req: number; vol: string }
  | { t: 'read'; req: number; vol: string; offset: number; length: number };

/** Host → member. */
export type ToMember =
  | { t: 'welcome'; member: number; volumes: GroupVolumeInfo[]; heartbeatMs: number }
  | { t: 'prepare'; attempt: number }
  | { t: 'freeze'; attempt: number; limitMs: number }
  | { t: 'thaw'; attempt: number; taken: boolean; reason?: string }
  | { t: 'post'; attempt: number; snapshot: string }
  | { t: 'done'; req: number; data?: Uint8Array; snapshot?: SetSnapshot }
  | { t: 'fail'; req: number; code: ErrorCode; message: string }
  | { t: 'beat' };

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'out-of-range', 'invalid-argument', 'corrupt', 'checksum-mismatch', 'quota', 'locked', 'read-only',
  'frozen', 'timeout', 'unsupported', 'aborted', 'not-found', 'exists', 'closed', 'io',
]);

function bad(what: string): StrataError {
  return new StrataError('corrupt', `A consistency-group message is malformed (${what}); the sender is not speaking protocol version ${PROTOCOL_VERSION}.`);
}

type Obj = Record<string, unknown>;

function str(o: Obj, k: string, optional = false): string | undefined {
  const v = o[k];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v.length > LIMITS.maxString) throw bad(`field ${k}`);
  return v;
}

function int(o: Obj, k: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw bad(`field ${k}`);
  return v;
}

function bytes(o: Obj, k: string): Uint8Array {
  const v = o[k];
  if (!(v instanceof Uint8Array) || v.length > LIMITS.maxIo) throw bad(`field ${k}`);
  return v;
}

function obj(x: unknown): Obj {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw bad('not an object');
  return x as Obj;
}

/** Validate a message a member sent; throws `corrupt` on anything unexpected. */
export function parseToHost(x: unknown): ToHost {
  const o = obj(x);
  switch (o.t) {
    case 'hello':
      return { t: 'hello', v: int(o, 'v'), name: str(o, 'name')! };
    case 'prepared':
    case 'frozen':
      return { t: o.t, attempt: int(o, 'attempt') };
    case 'veto':
      return { t: 'veto', attempt: int(o, 'attempt'), reason: str(o, 'reason')! };
    case 'beat':
    case 'bye':
      return { t: o.t };
    case 'snapshot': {
      const name = str(o, 'name', true);
      return name === undefined ? { t: 'snapshot', req: int(o, 'req') } : { t: 'snapshot', req: int(o, 'req'), name };
    }
    case 'write':
      return { t: 'write', req: int(o, 'req'), vol: str(o, 'vol')!, offset: int(o, 'offset'), data: bytes(o, 'data') };
    case 'zero':
      return { t: 'zero', req: int(o, 'req'), vol: str(o, 'vol')!, offset: int(o, 'offset'), length: int(o, 'length', LIMITS.maxIo) };
    case 'flush':
      return { t: 'flush', req: int(o, 'req'), vol: str(o, 'vol')! };
    case 'read':
      return { t: 'read', req: int(o, 'req'), vol: str(o, 'vol')!, offset: int(o, 'offset'), length: int(o, 'length', LIMITS.maxIo) };
    default:
      throw bad('unknown type');
  }
}

function parseSetSnapshot(x: unknown): SetSnapshot {
  const o = obj(x);
  const vols = o.volumes;
  if (!Array.isArray(vols) || vols.length > LIMITS.maxVolumes || vols.some((v) => typeof v !== 'string' || v.length > LIMITS.maxString)) throw bad('field volumes');
  return { id: str(o, 'id')!, volumes: vols as string[], participants: int(o, 'participants'), frozenMs: int(o, 'frozenMs') };
}

/** Validate a message the host sent; throws `corrupt` on anything unexpected. */
export function parseToMember(x: unknown): ToMember {
  const o = obj(x);
  switch (o.t) {
    case 'welcome': {
      const vols = o.volumes;
      if (!Array.isArray(vols) || vols.length > LIMITS.maxVolumes) throw bad('field volumes');
      const volumes = vols.map((v) => {
        const vo = obj(v);
        return { name: str(vo, 'name')!, size: int(vo, 'size'), blockSize: int(vo, 'blockSize', 1 << 30) };
      });
      return { t: 'welcome', member: int(o, 'member'), volumes, heartbeatMs: int(o, 'heartbeatMs', LIMITS.maxLimitMs) };
    }
    case 'prepare':
      return { t: 'prepare', attempt: int(o, 'attempt') };
    case 'freeze':
      return { t: 'freeze', attempt: int(o, 'attempt'), limitMs: int(o, 'limitMs', LIMITS.maxLimitMs) };
    case 'thaw': {
      if (typeof o.taken !== 'boolean') throw bad('field taken');
      const reason = str(o, 'reason', true);
      return reason === undefined ? { t: 'thaw', attempt: int(o, 'attempt'), taken: o.taken } : { t: 'thaw', attempt: int(o, 'attempt'), taken: o.taken, reason };
    }
    case 'post':
      return { t: 'post', attempt: int(o, 'attempt'), snapshot: str(o, 'snapshot')! };
    case 'done': {
      const m: ToMember & { t: 'done' } = { t: 'done', req: int(o, 'req') };
      if (o.data !== undefined) m.data = bytes(o, 'data');
      if (o.snapshot !== undefined) m.snapshot = parseSetSnapshot(o.snapshot);
      return m;
    }
    case 'fail': {
      const code = str(o, 'code')!;
      if (!ERROR_CODES.has(code)) throw bad('field code');
      return { t: 'fail', req: int(o, 'req'), code: code as ErrorCode, message: str(o, 'message')! };
    }
    case 'beat':
      return { t: 'beat' };
    default:
      throw bad('unknown type');
  }
}
