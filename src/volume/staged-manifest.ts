import { validateManifest, type Manifest, type ManifestStore } from '../format/manifest.js';

/** What a volume needs of its manifest: the current one, its generation, and a way to replace it. */
export interface ManifestHolder {
  readonly generation: number;
  readonly manifest: Manifest;
  commit(next: Manifest): Promise<void>;
}

/**
 * The manifest of a volume while `Volume.staged` builds a change: commits are validated and kept
 * in memory only, so the stored manifest (`committed`) still names the state before the change
 * until one real commit publishes everything at once. Layer files created meanwhile are named
 * by no stored manifest: if the process dies, the next writable open removes them as orphans.
 */
export class StagedManifest implements ManifestHolder {
  manifest: Manifest;

  constructor(readonly committed: ManifestStore) {
    this.manifest = committed.manifest;
  }

  get generation(): number {
    return this.committed.generation;
  }

  async commit(next: Manifest): Promise<void> {
    validateManifest(next, 'The new manifest');
    this.manifest = next;
  }
}

/** A staged change being built (`Volume.staged`, staged.ts), as the volume keeps it. */
export interface StagingState {
  committed: ManifestStore;
  /** layers open before the change: any other is the change's own */
  layersBefore: Set<string>;
  /** the live layer the change replaces, deleted once the change is committed */
  dropOnCommit: string | null;
  /** the stored manifest is being written: a failure leaves the outcome unknown */
  committing?: boolean;
}
