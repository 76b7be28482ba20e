import { StrataError } from '../errors.js';
import type { ManifestStore } from '../format/manifest.js';
import { collectGarbage } from './merge.js';
import { layerRecord } from './tree.js';
import { StagedManifest, type StagingState } from './staged-manifest.js';
import { removeStagingMark, writeStagingMark } from './staging-mark.js';
import { takeSnapshot, type SnapshotInfo } from './snapshots.js';
import type { VolumeCore } from './core.js';

/** What `build` of {@link Volume.staged} gets. */
export interface StagedChange {
  /** Seal the live layer of the change as snapshot `name` (published with the change). */
  snapshot(name: string): Promise<SnapshotInfo>;
}

/**
 * Build a change of the live view and new snapshots off to the side, and publish all of it in
 * one manifest commit when `build` resolves. Inside `build`, write through the volume as usual
 * and take snapshots with `stage.snapshot` (the public `snapshot`, `revert`, `deleteSnapshot`
 * and block jobs are refused until the change is committed or dropped).
 *
 * The change starts from `from`: `'live'` stacks a new layer on the live view (what `build`
 * does not overwrite stays as it was); `'last-snapshot'` starts from what lies under the live
 * layer (the snapshot it grew from, or nothing), so the live layer's own changes are dropped
 * when the change is committed.
 *
 * If `build` throws, or `signal` fired by the time it resolves, every layer the change created
 * is deleted and the volume is exactly as before (snapshots, their content, the live view);
 * the error is rethrown. If the process dies first, the stored manifest never named those
 * layers: the next writable open removes their files. Reads during `build` see the change.
 * If writing the stored manifest itself fails, the change may or may not be stored (a failed
 * flush cannot tell): its layers are then kept, the error says so, and `onCommit` (called just
 * before that write) lets a caller word its messages. Not for volumes on a remote image
 * (`unsupported`).
 */
export async function staged<T>(core: VolumeCore, from: 'live' | 'last-snapshot', build: (stage: StagedChange) => Promise<T>, options: { signal?: AbortSignal; onCommit?: () => void } = {}): Promise<T> {
  core.assertWritable();
  core.assertNoJob('start a staged change');
  core.assertNoObservers('start a staged change');
  if (core.remoteBase) throw new StrataError('unsupported', 'This volume is built on a remote image; an import cannot be staged on it. Import into a local volume (`stratadisk create`) instead.');
  const committed = core.manifestStore as ManifestStore;
  const state: StagingState = { committed, layersBefore: new Set(core.layers.keys()), dropOnCommit: null };
  let result: T;
  try {
    await core.exclusive(async () => {
      const live = core.active;
      await live.flush();
      // Mark the layers this change will build (numbered from nextLayer up) as its own, so that
      // after a crash they are not taken for newer state that was lost (staging-mark.ts).
      await writeStagingMark(core.ns, committed.manifest.nextLayer);
      core.staging = state;
      core.manifestStore = new StagedManifest(committed);
      // An empty live layer holds nothing to keep: the change replaces it rather than sealing it.
      const replace = from === 'last-snapshot' || live.dataBlocks + live.zeroBlocks === 0;
      const parent = replace ? layerRecord(core.manifest, live.id).parent : live.id;
      await core.stackActiveLayer(parent, (m) => {
        if (replace) {
          m.layers = m.layers.filter((l) => l.id !== live.id);
        } else {
          // Sealed without a snapshot: after the commit it is merged with the change's layer.
          const rec = layerRecord(m, live.id);
          rec.sealed = true;
          rec.contentId = live.contentId();
        }
      });
      if (replace) state.dropOnCommit = live.id;
    });
    result = await build({
      snapshot: async (name) => {
        if (core.staging !== state) throw new StrataError('closed', 'This staged change is over; take snapshots with Volume.snapshot.');
        return takeSnapshot(core, name);
      },
    });
    if (options.signal?.aborted) throw new StrataError('aborted', 'Interrupted.');
    await core.exclusive(async () => {
      await core.active.flush();
      await core.ns.sync();
      if (options.signal?.aborted) throw new StrataError('aborted', 'Interrupted.');
      options.onCommit?.();
      state.committing = true;
      await committed.commit(core.manifest);
      core.manifestStore = committed;
      core.staging = null;
    });
  } catch (e) {
    if (core.staging !== state) throw e;
    await core.exclusive(() => dropStaged(core, state));
    if (!state.committing) throw e;
    throw new StrataError('io', `Storing the manifest that publishes the change failed (${e instanceof Error ? e.message : String(e)}); the volume holds either the state before the change or all of it: reopen it to see which.`, { cause: e });
  }
  // Committed: what follows only tidies up, and an open would do the same.
  await core.exclusive(async () => {
    try {
      await removeStagingMark(core.ns);
      if (state.dropOnCommit !== null) await core.dropLayerFiles(state.dropOnCommit);
      await collectGarbage(core);
    } catch (e) {
      const code = e instanceof StrataError ? e.code : 'io';
      throw new StrataError(code, `The change was committed, but tidying up after it failed (${e instanceof Error ? e.message : String(e)}); the next writable open of the volume finishes that.`, { cause: e });
    } finally {
      core.rebuildChain();
    }
  });
  return result;
}

/**
 * Undo a staged change in memory: the stored manifest is current again. The change's layers are
 * closed and, unless a failed commit may have stored a manifest naming them, deleted.
 */
async function dropStaged(core: VolumeCore, state: StagingState): Promise<void> {
  core.manifestStore = state.committed;
  core.staging = null;
  for (const [id, layer] of [...core.layers]) {
    if (state.layersBefore.has(id)) continue;
    if (state.committing) {
      core.layers.delete(id);
      await layer.close().catch(() => {});
    } else {
      // A file that cannot be deleted now is an orphan, which the next writable open removes.
      await core.dropLayerFiles(id).catch(() => {});
    }
  }
  // the change's layers are gone: clear its mark (if this fails, the next writable open does)
  if (!state.committing) await removeStagingMark(core.ns).catch(() => {});
  core.rebuildChain();
}
