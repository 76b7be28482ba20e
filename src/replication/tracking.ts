/**
 * What a primary session needs from its out-of-sync bitmap and its activity log
 * (./out-of-sync.ts and ./activity-log.ts keep them on a store), and in-memory versions for a
 * session that keeps nothing across restarts (tests, a page that replicates a memory volume).
 */

/** Blocks the secondary may lack (flat runs [firstBlock, count]*). */
export interface OutOfSyncMap {
  /** opened empty because nothing was kept: it cannot say what an existing secondary lacks */
  readonly created?: boolean;
  markRuns(runs: readonly number[]): void;
  clearRuns(runs: readonly number[]): void;
  readonly dirtyBlocks: number;
  /** ascending runs from `fromBlock`, at most `maxBlocks` blocks in all */
  runs(fromBlock?: number, maxBlocks?: number): number[];
  isDirty(block: number): boolean;
  persist(): Promise<void>;
  close(): Promise<void>;
}

/** Extents that may hold writes not yet durable on both sides (DRBD's activity log). */
export interface ActivityLogLike {
  /** extents hot at the last unclean end, as block runs */
  readonly recovered: readonly number[];
  enter(runs: readonly number[]): Promise<number>;
  releaseUpTo(token: number): void;
  close(): Promise<void>;
}

/** An out-of-sync map in memory: a sorted set of blocks. */
export class MemoryOutOfSync implements OutOfSyncMap {
  readonly created = true;
  private blocks = new Set<number>();

  markRuns(runs: readonly number[]): void {
    for (let i = 0; i < runs.length; i += 2) for (let b = runs[i]!; b < runs[i]! + runs[i + 1]!; b++) this.blocks.add(b);
  }

  clearRuns(runs: readonly number[]): void {
    if (this.blocks.size === 0) return;
    for (let i = 0; i < runs.length; i += 2) for (let b = runs[i]!; b < runs[i]! + runs[i + 1]!; b++) this.blocks.delete(b);
  }

  get dirtyBlocks(): number {
    return this.blocks.size;
  }

  runs(fromBlock = 0, maxBlocks = Number.MAX_SAFE_INTEGER): number[] {
    const sorted = [...this.blocks].filter((b) => b >= fromBlock).sort((a, b) => a - b);
    const out: number[] = [];
    let n = 0;
    for (const b of sorted) {
      if (n >= maxBlocks) break;
      const last = out.length - 2;
      if (last >= 0 && out[last]! + out[last + 1]! === b) out[last + 1]!++;
      else out.push(b, 1);
      n++;
    }
    return out;
  }

  isDirty(block: number): boolean {
    return this.blocks.has(block);
  }

  async persist(): Promise<void> {}
  async close(): Promise<void> {}
}

/** An activity log that remembers nothing (a memory volume has nothing to recover). */
export class NoActivityLog implements ActivityLogLike {
  readonly recovered: readonly number[] = [];
  private token = 0;
  enter(): Promise<number> {
    return Promise.resolve(++this.token);
  }
  releaseUpTo(): void {}
  async close(): Promise<void> {}
}
