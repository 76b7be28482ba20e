/**
 * Where each preserved block of one diff area sits in its store: block index -> byte offset,
 * in pages of 4096 entries allocated on the first entry (0 = absent; offset 0 is the area
 * header, never data). Memory is proportional to what was preserved, not to the volume.
 */
const PAGE_SHIFT = 12;
const PAGE = 1 << PAGE_SHIFT;

export class BlockIndex {
  #pages = new Map<number, Float64Array>();
  #count = 0;

  /** Number of blocks with an offset. */
  get count(): number {
    return this.#count;
  }

  /** Blocks [start, start+count) sit one after another from byte `offset` (blockSize each). */
  setRun(start: number, count: number, offset: number, blockSize: number): void {
    for (let i = 0; i < count; ) {
      const b = start + i;
      const p = Math.floor(b / PAGE);
      let page = this.#pages.get(p);
      if (!page) {
        page = new Float64Array(PAGE);
        this.#pages.set(p, page);
      }
      const from = b - p * PAGE;
      const n = Math.min(PAGE - from, count - i);
      for (let j = 0; j < n; j++) {
        if (page[from + j] === 0) this.#count++;
        page[from + j] = offset + (i + j) * blockSize;
      }
      i += n;
    }
  }

  /** Byte offset of block `b`, or 0 when this area has no copy of it. */
  get(b: number): number {
    const page = this.#pages.get(Math.floor(b / PAGE));
    return page ? page[b % PAGE]! : 0;
  }
}
