/** One diff area as the writer holds it open: its catalog record, log store, bitmaps and locations. */
import type { Store } from '../store/store.js';
import type { SparseBitmap } from '../wasm/index.js';
import type { BlockIndex } from './block-index.js';
import type { AreaRecord } from './catalog.js';
import type { AreaHeader } from './diff-area.js';
import type { VerifiedRecords } from './verified-records.js';

export interface Area {
  rec: AreaRecord;
  header: AreaHeader;
  store: Store;
  bits: SparseBitmap;
  index: BlockIndex;
  /** the batch records, verified on first read */
  records: VerifiedRecords;
  end: number;
  seq: number;
  slot: number;
  shared: SharedArrayBuffer | null;
  words: Int32Array | null;
}
