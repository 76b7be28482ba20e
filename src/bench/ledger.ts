/**
 * A workload whose invariant spans blocks and volumes, for the consistency-group tests and the
 * benchmark: a ledger over two volumes. Writer `w` owns one block on volume A (its account) and
 * one on volume B (its counter-account); each transfer moves an amount from A to B and writes a
 * record on each — A first, then B — carrying the writer's sequence number. In any state a
 * snapshot can capture consistently, for every writer, both records have the same sequence
 * number and the balances sum to the initial amount. A snapshot taken between the two writes of
 * a transfer breaks that, which is what a freeze prevents.
 */
import type { WritableVolume } from '../consistency/gate.js';

export const LEDGER_INITIAL = 1_000_000;
const RECORD = 32;
const MAGIC = 0x4c444752; // "LDGR"

/** Where writer `w`'s record lives on either volume: its own block. */
export function ledgerOffset(writer: number, blockSize: number): number {
  return writer * blockSize;
}

function fnv(b: Uint8Array, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

export function encodeRecord(writer: number, seq: number, balance: number): Uint8Array {
  const b = new Uint8Array(RECORD);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, MAGIC);
  dv.setUint32(4, writer);
  dv.setUint32(8, seq);
  dv.setFloat64(12, balance);
  dv.setUint32(28, fnv(b, 28));
  return b;
}

export interface LedgerRecord {
  writer: number;
  seq: number;
  balance: number;
}

/** The record in `b`, or null for a block never written; throws on a damaged record. */
export function decodeRecord(b: Uint8Array): LedgerRecord | null {
  const dv = new DataView(b.buffer, b.byteOffset, RECORD);
  if (dv.getUint32(0) === 0 && dv.getUint32(28) === 0) return null;
  if (dv.getUint32(0) !== MAGIC || dv.getUint32(28) !== fnv(b, 28)) throw new Error('damaged ledger record');
  return { writer: dv.getUint32(4), seq: dv.getUint32(8), balance: dv.getFloat64(12) };
}

/** One writer of the ledger. `transfer()` writes A then B; call it inside the participant's gate. */
export class LedgerWriter {
  seq = 0;
  moved = 0;

  constructor(
    readonly writer: number,
    private readonly a: WritableVolume,
    private readonly b: WritableVolume,
  ) {}

  async transfer(): Promise<void> {
    const seq = this.seq + 1;
    const amount = ((seq * 7919) % 97) + 1;
    const moved = this.moved + amount;
    const at = ledgerOffset(this.writer, this.a.blockSize);
    await this.a.write(at, encodeRecord(this.writer, seq, LEDGER_INITIAL - moved));
    await this.b.write(at, encodeRecord(this.writer, seq, moved));
    this.seq = seq;
    this.moved = moved;
  }
}

/** Something to read a view from: a live volume, a snapshot view, a remote snapshot. */
export interface ReadView {
  read(offset: number, length: number): Promise<Uint8Array>;
}

/**
 * Check the invariant over `writers` writers in one view of both volumes (e.g. the same
 * snapshot of A and of B). Returns one line per violation; empty when consistent.
 */
export async function checkLedger(a: ReadView, b: ReadView, writers: number, blockSize: number): Promise<string[]> {
  const out: string[] = [];
  for (let w = 0; w < writers; w++) {
    const at = ledgerOffset(w, blockSize);
    let ra: LedgerRecord | null;
    let rb: LedgerRecord | null;
    try {
      ra = decodeRecord(await a.read(at, RECORD));
      rb = decodeRecord(await b.read(at, RECORD));
    } catch (e) {
      out.push(`writer ${w}: ${(e as Error).message}`);
      continue;
    }
    if (ra === null && rb === null) continue;
    if (ra === null || rb === null) out.push(`writer ${w}: a record on one volume only (A seq ${ra?.seq ?? '-'}, B seq ${rb?.seq ?? '-'})`);
    else if (ra.seq !== rb.seq || ra.balance + rb.balance !== LEDGER_INITIAL) out.push(`writer ${w}: A seq ${ra.seq} balance ${ra.balance}, B seq ${rb.seq} balance ${rb.balance}`);
  }
  return out;
}
