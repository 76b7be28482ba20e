import { ENTRY_SIZE, SLOT_ABSENT, SLOT_ZERO, scanMapLog } from '../format/map-log.js';
import type { Store, StoreNamespace } from '../store/store.js';
import { ContentAccumulator, ItemBuffer, STATE_DATA, STATE_ZERO } from './content-id.js';
import type { EntryLookup } from './newer-state.js';

const PAGE_BITS = 9;
const PAGE = 1 << PAGE_BITS;
const MASK = PAGE - 1;

interface Page {
  slots: Int32Array;
  hashes: Uint8Array;
  /** index of the map record that set the entry (for certainty after a gap) */
  records: Int32Array;
}

/** What salvage learned about one layer, for its report. */
export interface SalvageLayerInfo {
  id: string;
  /** the map log file read, or null when there was none */
  map: string | null;
  /** the data file, or null when it is missing */
  data: string | null;
  dataFileBytes: number;
  dataBlocks: number;
  zeroBlocks: number;
  /** false when map records were lost: entries before the loss may have changed later */
  complete: boolean;
  problems: string[];
}

/**
 * One layer read for salvage: like `Layer.open` but it never gives up. A damaged map log is
 * read around its damage (`scanMapLog`), a missing or short data file only makes the blocks it
 * would hold unreadable, and a content ID that no longer matches marks the map incomplete.
 * It keeps what `salvage` needs per block: slot, stored XXH3-128, and whether the entry is
 * certain (set after the last lost stretch of the map).
 */
export class SalvageLayer implements EntryLookup {
  readonly info: SalvageLayerInfo;
  private readonly pages = new Map<number, Page>();
  /** entries set by records before this index may have been overwritten by lost records */
  private certainFrom = 0;

  private constructor(
    readonly id: string,
    readonly blockSize: number,
    readonly data: Store | null,
    map: string | null,
  ) {
    this.info = { id, map, data: data ? `${id}.data` : null, dataFileBytes: data?.size ?? 0, dataBlocks: 0, zeroBlocks: 0, complete: true, problems: [] };
  }

  /**
   * Read layer `id` from `mapFile` and `dataFile` (null: missing). `contentId`, when the
   * manifest recorded one (a sealed layer), is compared with what the map holds.
   */
  static async read(ns: StoreNamespace, id: string, blockSize: number, mapFile: string | null, dataFile: string | null, contentId: string | null): Promise<SalvageLayer> {
    const data = dataFile ? await openOrNull(ns, dataFile) : null;
    const layer = new SalvageLayer(id, blockSize, data, mapFile);
    if (!data) layer.problem(`its data file ${id}.data is missing: every data block it holds is unreadable`);
    if (!mapFile) {
      layer.info.map = null;
      layer.info.complete = false;
      layer.certainFrom = Infinity;
      layer.problem('its map log is missing: which blocks it held is unknown');
      return layer;
    }
    const store = await openOrNull(ns, mapFile);
    if (!store) {
      layer.info.complete = false;
      layer.certainFrom = Infinity;
      layer.problem(`its map log ${mapFile} cannot be opened`);
      return layer;
    }
    try {
      let bad = 0;
      const scan = await scanMapLog(store, (packed, count, record) => {
        bad += layer.replay(packed, count, record);
      });
      if (!scan.header) layer.problem(`the header of ${mapFile} is unreadable`);
      else if (scan.header.layer !== id || scan.header.blockSize !== blockSize) {
        layer.problem(`${mapFile} says it belongs to layer ${scan.header.layer} with ${scan.header.blockSize}-byte blocks, expected ${id} with ${blockSize}`);
      }
      if (scan.gaps.length > 0) {
        layer.info.complete = false;
        layer.certainFrom = scan.certainFrom;
        const bytes = scan.gaps.map((g) => `${g.from}-${g.to}`).join(', ');
        layer.problem(`${mapFile} lost records (damaged bytes ${bytes}): blocks whose last entry comes before the damage may have changed`);
      }
      if (scan.tailBytes > 0) layer.problem(`${mapFile} ends in ${scan.tailBytes} bytes that are no complete record (a write cut short by a crash, or damage)`);
      if (bad > 0) layer.problem(`${bad} map entries name impossible blocks or slots and were ignored`);
    } finally {
      await store.close();
    }
    if (contentId !== null && layer.info.complete && layer.contentId() !== contentId) {
      layer.info.complete = false;
      layer.certainFrom = Infinity;
      layer.problem(`its map no longer matches the content ID recorded when it was sealed (${contentId}): records were lost or changed, so no entry is certain`);
    }
    const slots = data ? Math.floor(data.size / blockSize) : 0;
    let past = 0;
    for (const [, slot] of layer.entries()) if (slot >= slots) past++;
    if (data && past > 0) layer.problem(`its data file is cut short: ${past} block(s) point past its end (${data.size} bytes)`);
    return layer;
  }

  private problem(text: string): void {
    this.info.problems.push(text);
  }

  /** Apply packed entries of map record `record`; returns how many were impossible (skipped). */
  private replay(packed: Uint8Array, count: number, record: number): number {
    const v = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
    let bad = 0;
    for (let i = 0; i < count; i++) {
      const at = i * ENTRY_SIZE;
      const block = v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
      const slot = v.getInt32(at + 8, true);
      if (block >= 2 ** 32 || slot < SLOT_ZERO) {
        bad++;
        continue;
      }
      this.set(block, slot, packed.subarray(at + 12, at + 28), record);
    }
    return bad;
  }

  private set(block: number, slot: number, hash: Uint8Array, record: number): void {
    const key = block >>> PAGE_BITS;
    let p = this.pages.get(key);
    if (!p) {
      if (slot === SLOT_ABSENT) return;
      p = { slots: new Int32Array(PAGE).fill(SLOT_ABSENT), hashes: new Uint8Array(PAGE * 16), records: new Int32Array(PAGE) };
      this.pages.set(key, p);
    }
    const i = block & MASK;
    const old = p.slots[i]!;
    if (old >= 0) this.info.dataBlocks--;
    else if (old === SLOT_ZERO) this.info.zeroBlocks--;
    if (slot >= 0) this.info.dataBlocks++;
    else if (slot === SLOT_ZERO) this.info.zeroBlocks++;
    p.slots[i] = slot;
    p.records[i] = record;
    if (slot >= 0) p.hashes.set(hash, i * 16);
    else p.hashes.fill(0, i * 16, i * 16 + 16);
  }

  slot(block: number): number {
    const p = this.pages.get(block >>> PAGE_BITS);
    return p ? p.slots[block & MASK]! : SLOT_ABSENT;
  }

  hash(block: number): Uint8Array | null {
    const p = this.pages.get(block >>> PAGE_BITS);
    if (!p) return null;
    const i = (block & MASK) * 16;
    return p.hashes.subarray(i, i + 16);
  }

  /** Is this layer's entry for `block` (or its lack of one) known to be its last? */
  certain(block: number): boolean {
    if (this.info.complete) return true;
    const p = this.pages.get(block >>> PAGE_BITS);
    if (!p || p.slots[block & MASK] === SLOT_ABSENT) return false;
    return p.records[block & MASK]! >= this.certainFrom;
  }

  get complete(): boolean {
    return this.info.complete;
  }

  /** Every (block, slot) held (data or known-zero), pages in ascending order. */
  *entries(): Generator<[block: number, slot: number]> {
    for (const key of [...this.pages.keys()].sort((a, b) => a - b)) {
      const slots = this.pages.get(key)!.slots;
      for (let i = 0; i < PAGE; i++) if (slots[i] !== SLOT_ABSENT) yield [key * PAGE + i, slots[i]!];
    }
  }

  /** Highest block held + 1 (0 when empty): the size of the layer on its own, in blocks. */
  get extentBlocks(): number {
    let top = 0;
    for (const [block] of this.entries()) top = block + 1;
    return top;
  }

  /** Can slot `slot` be read whole from the data file? */
  readable(slot: number): boolean {
    return this.data !== null && (slot + 1) * this.blockSize <= this.data.size;
  }

  contentId(): string {
    const acc = new ContentAccumulator();
    const adds = new ItemBuffer();
    for (const [block, slot] of this.entries()) adds.push(block, slot >= 0 ? STATE_DATA : STATE_ZERO, slot >= 0 ? this.hash(block) : null, 0);
    acc.apply(adds, new ItemBuffer());
    return acc.id(this.blockSize);
  }

  async close(): Promise<void> {
    await this.data?.close();
  }
}

async function openOrNull(ns: StoreNamespace, name: string): Promise<Store | null> {
  try {
    if (!(await ns.exists(name))) return null;
    return await ns.open(name, { readOnly: true });
  } catch {
    return null;
  }
}
