import { readFileSync, realpathSync, rmdirSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { StrataError } from '../../errors.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { NodeFileStore } from '../../store/node-file.js';
import type { StoreNamespace } from '../../store/store.js';
import { progressIn, type ProgressStore } from '../../resync/progress.js';
import { resync, type ResyncResult } from '../../resync/resync.js';
import { DEFAULT_SEGMENT_SIZE, SegmentSums } from '../../resync/segment-sums.js';
import { StoreSide, VolumeSide, type ResyncSide } from '../../resync/side.js';
import type { Journal } from '../../journal/index.js';
import type { Volume } from '../../volume/volume.js';
import { JSON_OPTION, type Command } from '../command.js';
import { EXIT, Interrupted, line, UsageError } from '../io.js';
import { formatBytes, parseSize } from '../size.js';
import { openJournaledVolume } from '../target.js';
import { readReplicaToken, REPLICA_TOKEN_ENV, REPLICA_TOKEN_OPTIONS } from '../replica-token.js';
import { dialReplica, replicaScheme } from '../../replication/dial.js';
import { remoteSide } from '../../resync/remote.js';

export const resyncCommand: Command = {
  name: 'resync',
  summary: 'bring DST up to SRC by segment checksums, moving only segments that differ (or --verify them)',
  usage: 'resync SRC DST [--verify] [--json] [--segment-size SIZE] [--state DIR] [--token-file FILE] [--ca FILE] | resync --refresh DIR [--json]',
  details: [
    'SRC and DST are each a volume DIR or a raw image file / block device of the same size. Each',
    'side is cut into segments (default 1 MiB); a volume offers the XXH3-128 checksums it keeps',
    'valid (`resync --refresh DIR` brings them up to date; a write clears its segment\'s flag),',
    'everything else is read and hashed. Segments whose checksums differ are copied SRC -> DST',
    '(DST is flushed at the end); --verify copies nothing and lists them (DRBD online verify).',
    'Ctrl-C stops after the batch in flight and says what was copied; running the same resync',
    'again continues where it stopped (the progress lives in DST\'s volume directory, or in',
    'DST.resync/ beside a raw file, or in --state DIR); if SRC changed meanwhile, it starts over.',
    'SRC or DST may also be the URL of a `stratadisk serve-replica` server (tcp://, tls://, ws://,',
    'wss://, as it printed it): its volume is the side, reached with the replication token',
    `($${REPLICA_TOKEN_ENV} or --token-file FILE, 0600) and --ca FILE for tls:// and wss://. The server`,
    'chooses its segment size (1M unless its block size is larger). A remote DST keeps no progress:',
    'a rerun after Ctrl-C compares everything again (and copies only what still differs).',
    'Exit: 0 done (--verify: identical); 1 (--verify) segments differ; 2 an error; 130 interrupted.',
    '  --segment-size SIZE  a power of two from 4K to 1G, at least a volume\'s block size (default 1M)',
    '  --state DIR  where a raw DST keeps its progress (needed for a block device to resume)',
    '  --token-file FILE  the replication token, for a URL side (or $' + REPLICA_TOKEN_ENV + ')',
    '  --ca FILE   PEM CA that signed the server\'s certificate (tls://, wss://)',
    '  --refresh DIR  hash the volume\'s invalid segments and record them (its checksums persist)',
    '  --json   { verify, complete, size, segmentSize, segmentsCompared, segmentsDiffering,',
    '           differingOffsets, copiedOffsets, resumedFrom, next, copiedBefore, bytesSentSrcToDst,',
    '           bytesSentDstToSrc, bytesHashedSrc, bytesHashedDst, checksumsReused, error? }',
  ].join('\n'),
  options: {
    ...JSON_OPTION,
    verify: { type: 'boolean' },
    refresh: { type: 'boolean' },
    'segment-size': { type: 'string' },
    state: { type: 'string' },
    ca: { type: 'string' },
    ...REPLICA_TOKEN_OPTIONS,
  },
  positionals: { min: 1, max: 2 },
  async run({ io, args, values, signal, progress }) {
    const json = values.json === true;
    const seg = values['segment-size'] === undefined ? undefined : parseSize(String(values['segment-size']), 'segment size');
    if (values.refresh) {
      if (args.length !== 1) throw new UsageError('--refresh takes one volume directory: `stratadisk resync --refresh DIR`', 'resync');
      return refresh(args[0]!, seg, json, io, signal, progress);
    }
    if (args.length !== 2) throw new UsageError('missing DST: usage is `stratadisk resync SRC DST`', 'resync');
    const verify = values.verify === true;
    if (sameFile(args[0]!, args[1]!)) throw new StrataError('invalid-argument', `${args[0]} and ${args[1]} are the same; a resync needs two sides.`);
    // a URL side is reached with the replication token (and a CA for tls:// and wss://)
    let remote: RemoteOptions | null = null;
    if (isUrl(args[0]!) || isUrl(args[1]!)) {
      for (const a of args) if (isUrl(a)) replicaScheme(a);
      const token = await readReplicaToken(values, io, 'resync');
      remote = { token, ...(typeof values.ca === 'string' ? { ca: readFileSync(resolvePath(values.ca)) } : {}) };
    } else if (values.ca !== undefined || values['token-file'] !== undefined) {
      throw new UsageError('--ca and --token-file go with a URL side (tcp://, tls://, ws://, wss://)', 'resync');
    }
    const opened: (() => Promise<void>)[] = [];
    const closeAll = async () => {
      for (const c of opened.reverse()) await c().catch(() => {});
    };
    let result: ResyncResult;
    let remoteDst = false;
    try {
      // a remote side chooses its segment size: open it first and cut the local side alike
      let src: OpenedSide;
      let dst: OpenedSide;
      if (isUrl(args[1]!) && !isUrl(args[0]!)) {
        dst = await openSide(args[1]!, !verify, seg, opened, remote);
        src = await openSide(args[0]!, false, seg ?? dst.side.segmentSize, opened, remote);
      } else {
        src = await openSide(args[0]!, false, seg, opened, remote);
        dst = await openSide(args[1]!, !verify, seg ?? src.side.segmentSize, opened, remote);
      }
      remoteDst = dst.remote === true;
      const bar = progress(verify ? 'verify' : 'resync', src.side.size);
      const segSize = src.side.segmentSize;
      let first = true;
      try {
        result = await resync(src.side, dst.side, {
          verify,
          signal,
          progress: verify ? null : dst.progress(values.state === undefined ? undefined : String(values.state)),
          // the first call is the starting point (0, or where a resume starts): the bar starts
          // with the first finished window
          onProgress: (done) => {
            if (first) first = false;
            else bar.update(Math.min(src.side.size, done * segSize));
          },
        });
      } finally {
        bar.finish();
      }
      // a volume destination: checksum what was copied, so its checksums are all valid again
      if (!verify && result.complete && dst.sums && !signal.aborted) await dst.sums.refresh({ signal });
      // the progress directory beside a raw destination is empty once the resync is complete
      if (result.complete && dst.defaultStateDir) {
        try {
          rmdirSync(dst.defaultStateDir);
        } catch {
          // not empty (something else is in it) or already gone: leave it
        }
      }
    } finally {
      await closeAll();
    }
    if (json) line(io.stdout, JSON.stringify(result));
    else printResult(io.stdout, result, args[0]!, args[1]!);
    if (result.error) {
      const k = kept(result, remoteDst);
      if (result.error.code === 'aborted') throw new Interrupted(k);
      throw new StrataError(result.error.code as never, `${result.error.message} ${k[0]!.toUpperCase()}${k.slice(1)}.`);
    }
    return verify && result.segmentsDiffering > 0 ? EXIT.different : EXIT.ok;
  },
};

function kept(r: ResyncResult, remoteDst: boolean): string {
  const upTo = Math.min(r.size, r.next * r.segmentSize);
  if (r.verify) return `${upTo >= r.size ? 'everything was compared' : upTo === 0 ? 'nothing was compared' : `bytes 0-${upTo - 1} were compared`}; nothing was copied`;
  const copied = `${r.copiedOffsets.length} segments were copied (copiedOffsets in --json), everything below byte ${upTo} is in sync`;
  if (remoteDst) return `${copied}; a remote destination keeps no progress, so running the same resync again compares everything again (it copies only what still differs)`;
  return `${copied}; run the same resync again to continue from there`;
}

function printResult(out: { write(s: string): void }, r: ResyncResult, a: string, b: string): void {
  const moved = formatBytes(r.bytesSentSrcToDst);
  if (r.verify) {
    line(out, r.segmentsDiffering === 0 ? `Identical: ${r.segmentsCompared} segments of ${formatBytes(r.segmentSize)} compared.` : `${r.segmentsDiffering} of ${r.segmentsCompared} segments differ between ${a} and ${b}:`);
    for (const o of r.differingOffsets.slice(0, 20)) line(out, `  offset ${o} (0x${o.toString(16)})`);
    if (r.differingOffsets.length > 20) line(out, `  ... ${r.differingOffsets.length - 20} more (--json lists them all)`);
  } else {
    line(out, `${r.complete ? 'In sync' : 'Stopped'}: ${r.segmentsCompared} segments compared${r.resumedFrom > 0 ? ` (resumed at segment ${r.resumedFrom})` : ''}, ${r.segmentsDiffering} copied (${moved} sent).`);
  }
  line(out, `Hashed ${formatBytes(r.bytesHashedSrc)} of the source and ${formatBytes(r.bytesHashedDst)} of the destination; ${r.checksumsReused.src + r.checksumsReused.dst} stored checksums reused.`);
}

interface OpenedSide {
  side: ResyncSide;
  /** reached over a link (serve-replica): it keeps no progress */
  remote?: boolean;
  sums?: SegmentSums;
  /** the progress directory made beside a raw destination (`progress` without --state) */
  defaultStateDir?: string;
  progress(stateDir?: string): ProgressStore | null;
}

interface RemoteOptions {
  token: string;
  ca?: Buffer;
}

function isUrl(a: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(a);
}

/** A volume directory, a raw file / block device, or the URL of a replica server. */
async function openSide(path: string, writable: boolean, seg: number | undefined, toClose: (() => Promise<void>)[], remote: RemoteOptions | null): Promise<OpenedSide> {
  if (isUrl(path)) {
    const link = await dialReplica(path, { token: remote!.token, ...(remote!.ca !== undefined ? { ca: remote!.ca } : {}) });
    toClose.push(async () => link.close());
    const side = await remoteSide(link);
    if (seg !== undefined && seg !== side.segmentSize) {
      throw new StrataError('invalid-argument', `${path} serves ${side.segmentSize}-byte segments, not ${seg}; leave out --segment-size (the local side then uses the server's).`);
    }
    if (writable && !side.writable) throw new StrataError('read-only', `${path} serves its volume read-only; a resync writes to it (use --verify to only compare).`);
    return { side, remote: true, progress: () => null };
  }
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new StrataError('not-found', `${path} does not exist; give a volume directory or a raw image file (or block device) of the same size as the other side.`);
  }
  if (st.isDirectory()) {
    // a writer opens the write log too (every write is logged); a reader needs none
    const { volume, journal } = await openJournaledVolume(path, !writable, writable);
    toClose.push(() => closeVolume(volume, journal, null));
    const sums = await SegmentSums.open(volume, seg === undefined ? {} : { segmentSize: seg });
    toClose.pop();
    toClose.push(() => closeVolume(volume, journal, sums));
    const ns = volume.ns;
    return { side: new VolumeSide(volume, sums), sums, progress: () => progressIn(ns) };
  }
  if (!st.isFile() && !st.isBlockDevice()) throw new StrataError('invalid-argument', `${path} is neither a volume directory nor a raw image file or block device.`);
  const store = await NodeFileStore.open(path, { readOnly: !writable, io: 'async' });
  toClose.push(() => store.close());
  // a source file is named with its size and modification time: a resumed resync whose source
  // changed meanwhile starts again from the beginning
  const identity = `file:${realpathSync(path)}${writable ? '' : `@${st.size}:${st.mtimeMs}`}`;
  const side = new StoreSide(store, path, identity, seg ?? DEFAULT_SEGMENT_SIZE, writable);
  const opened: OpenedSide = {
    side,
    progress: (stateDir) => {
      let dir = stateDir;
      if (dir === undefined) {
        if (st.isBlockDevice()) return null; // nowhere to keep it beside a device: --state DIR
        dir = `${path}.resync`;
        opened.defaultStateDir = dir;
      }
      // the namespace refuses a symbolic link there; it creates the directory 0700
      const ns: StoreNamespace = new NodeDirNamespace(dir, { create: true });
      return progressIn(ns);
    },
  };
  return opened;
}

async function closeVolume(volume: Volume, journal: Journal | null, sums: SegmentSums | null): Promise<void> {
  await sums?.close();
  void journal; // a writable volume's log closes with it
  await volume.close();
}

function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

async function refresh(dir: string, seg: number | undefined, json: boolean, io: { stdout: { write(s: string): void } }, signal: AbortSignal, progress: (label: string, total: number) => { update(n: number): void; finish(): void }): Promise<number> {
  const st = statSync(dir, { throwIfNoEntry: false });
  if (!st?.isDirectory()) throw new StrataError('invalid-argument', `${dir} is not a volume directory; --refresh keeps the checksums of a volume (raw files keep none).`);
  const { volume, journal } = await openJournaledVolume(dir, false, true);
  let sums: SegmentSums | null = null;
  try {
    sums = await SegmentSums.open(volume, seg === undefined ? {} : { segmentSize: seg });
    const s = sums;
    const bar = progress('refresh', volume.size);
    let r;
    try {
      r = await s.refresh({ signal, onProgress: (done, total) => bar.update(total === 0 ? volume.size : Math.round((done / total) * volume.size)) });
    } finally {
      bar.finish();
    }
    const out = { segments: s.count, segmentSize: s.segmentSize, valid: s.validCount, hashed: r.segments, bytesHashed: r.bytesHashed, distrusted: s.distrust };
    if (json) line(io.stdout, JSON.stringify(out));
    else line(io.stdout, `${out.valid} of ${out.segments} segments valid (${r.segments} hashed, ${formatBytes(r.bytesHashed)})${s.distrust ? `; the stored checksums were not used: ${s.distrust}` : ''}.`);
    if (signal.aborted) throw new Interrupted(`${out.valid} of ${out.segments} segments are valid and recorded; run it again to hash the rest`);
    return EXIT.ok;
  } finally {
    await sums?.close().catch(() => {});
    void journal;
    await volume.close();
  }
}
