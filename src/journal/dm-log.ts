import { StrataError } from '../errors.js';
import type { Store } from '../store/store.js';
import { FLAG_VOID, FLAG_ZERO } from './block-history.js';
import { DmLogFlag, hasFlag } from './dm-log-writes-format.js';
import { DmLogReader, type DmLogEntriesMode } from './dm-log-writes-reader.js';
import { DmLogWriter } from './dm-log-writes-writer.js';
import type { Journal } from './journal.js';
import type { Point } from './points.js';

/**
 * The write log as a Linux dm-log-writes log, both ways (`stratadisk journal export|import`).
 *
 * Export writes the records after `from` up to `to` as entries: a write as one write entry per
 * piece (widened to whole sectors with the bytes the volume held right after that record, read
 * from the view there), write-zeroes as writes of zeros (as QEMU's blklogwrites logs them), a
 * flush as a flush entry, a mark as a mark entry. Replaying it onto the state at `from` (export
 * that with `stratadisk export DIR@seq:FROM`) gives the state at every flush.
 *
 * Import reads a log onto a journaled volume whose log has no records yet and whose live state
 * is the state at the log's start: entry N becomes record (sequence) N — writes through the
 * volume's own write path (so they are logged), discards as write-zeroes, flushes as volume
 * flushes (one FLUSH record each), marks as mark records. A final flush makes it durable (one
 * record more, after the last entry).
 */
export interface DmLogExportReport {
  from: number;
  to: number;
  entries: number;
  records: number;
  bytes: number;
}

export interface DmLogImportReport {
  entries: number;
  writes: number;
  discards: number;
  flushes: number;
  marks: number;
  bytes: number;
  /** entries that did not become exactly one record (a write larger than a write batch); empty normally */
  shifted: { entry: number; seq: number }[];
}

export async function exportDmLog(
  journal: Journal,
  store: Store,
  options: { from?: string | Point; to?: string | Point; sectorSize?: 512 | 1024 | 2048 | 4096; signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {},
): Promise<DmLogExportReport> {
  const from = journal.resolve(options.from ?? 'base');
  const to = journal.resolve(options.to ?? 'latest');
  if (to < from) throw new StrataError('invalid-argument', `The end point (record ${to}) is before the start (record ${from}).`);
  const ss = options.sectorSize ?? 512;
  const writer = await DmLogWriter.create(store, { sectorSize: ss });
  const records = journal.recordsBetween(from, to);
  let bytes = 0;
  let buf = new Uint8Array(0);
  let done = 0;
  for (const r of records) {
    if (options.signal?.aborted) throw new StrataError('aborted', `The export was cancelled after ${done} of ${records.length} records; the file holds a partial log.`);
    if (r.kind === 'flush') await writer.flush();
    else if (r.kind === 'mark') await writer.mark(r.label ?? '');
    else {
      const view = journal.view({ seq: r.seq });
      for (const { block, piece } of journal.history.recordPieces(r.seq)) {
        if (piece.flags & FLAG_VOID) continue;
        const off = block * journal.volume.blockSize + piece.start;
        const start = Math.floor(off / ss) * ss;
        const end = Math.min(Math.ceil((off + piece.length) / ss) * ss, journal.volume.size);
        if (buf.length < end - start) buf = new Uint8Array(end - start);
        const part = buf.subarray(0, end - start);
        if (start === off && end === off + piece.length) {
          if (piece.flags & FLAG_ZERO) part.fill(0);
          else await journal.readPiece(r.seq, piece, part);
        } else await view.readInto(start, part);
        await writer.write(start, part);
        bytes += part.length;
      }
    }
    done++;
    options.onProgress?.(done, records.length);
  }
  await writer.finish();
  return { from, to, entries: writer.entries, records: records.length, bytes };
}

export async function importDmLog(
  journal: Journal,
  store: Store,
  options: { entries?: DmLogEntriesMode; signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {},
): Promise<DmLogImportReport> {
  journal.assertWritable();
  if (journal.nextSeq !== 0) {
    throw new StrataError('invalid-argument', `The write log already has ${journal.nextSeq} record${journal.nextSeq === 1 ? '' : 's'}; import a dm-log-writes log onto a volume whose log is new (\`stratadisk journal enable\` right after restoring the log's start state), so that entry N becomes record N.`);
  }
  const reader = await DmLogReader.open(store, { entries: options.entries ?? 'claimed', scanHint: '--scan' });
  const vol = journal.volume;
  // read every entry header first: a damaged or foreign log is refused before anything is applied
  for await (const e of reader.entries()) {
    if (options.signal?.aborted) throw new StrataError('aborted', 'The import was cancelled while checking the log; nothing was applied.');
    if (e.offset + e.length > vol.size) throw new StrataError('out-of-range', `Entry ${e.index} of the log writes ${e.length} bytes at ${e.offset}, past the end of the volume (${vol.size} bytes); nothing was applied.`);
    if (!hasFlag(e, DmLogFlag.MARK) && !hasFlag(e, DmLogFlag.DISCARD) && e.length > 0 && e.dataLength < e.length) throw new StrataError('corrupt', `Entry ${e.index} of the log writes ${e.length} bytes but carries ${e.dataLength}; nothing was applied.`);
  }
  const report: DmLogImportReport = { entries: 0, writes: 0, discards: 0, flushes: 0, marks: 0, bytes: 0, shifted: [] };
  const total = reader.mode === 'claimed' ? reader.claimedEntries : 0;
  let scratch = new Uint8Array(0);
  try {
    for await (const batch of reader.batches()) {
      for (const e of batch.entries) {
        if (options.signal?.aborted) throw new StrataError('aborted', `The import was cancelled after ${report.entries} entries; the volume and its log hold those (records 0..${report.entries - 1}).`);
        const seq = journal.nextSeq;
        if (seq !== e.index) report.shifted.push({ entry: e.index, seq });
        if (hasFlag(e, DmLogFlag.MARK)) {
          await journal.appendMark(e.mark ?? '');
          report.marks++;
        } else if (hasFlag(e, DmLogFlag.FLUSH) && e.length === 0) {
          journal.forceFlushRecord = true;
          await vol.flush();
          report.flushes++;
        } else if (hasFlag(e, DmLogFlag.DISCARD)) {
          if (e.length > 0) await vol.writeZeroes(e.offset, e.length);
          report.discards++;
        } else if (e.length > 0) {
          let data: Uint8Array;
          if (batch.bytes) data = batch.bytes.subarray(e.dataOffset - batch.offset, e.dataOffset - batch.offset + e.length);
          else {
            if (scratch.length < e.length) scratch = new Uint8Array(e.length);
            data = scratch.subarray(0, e.length);
            await reader.readData(e, data);
          }
          await vol.write(e.offset, data);
          report.writes++;
          report.bytes += e.length;
        } else {
          // an entry with no data and no action (METADATA only): nothing to apply, but keep the numbering
          await journal.appendMark('');
          report.marks++;
        }
        report.entries++;
        options.onProgress?.(report.entries, total);
      }
    }
  } catch (e) {
    if (e instanceof StrataError && e.code === 'aborted') throw e;
    // a failure of the store or the volume mid-way: say exactly what is kept
    const code = e instanceof StrataError ? e.code : 'io';
    throw new StrataError(code, `${(e instanceof Error ? e.message : String(e)).replace(/\.?\s*$/, '.')} The volume and its log hold the first ${report.entries} entries (records 0..${report.entries - 1}); the rest were not applied.`, { cause: e });
  }
  await vol.flush();
  return report;
}
