import type { Command } from '../command.js';
import { bench } from './bench.js';
import { check } from './check.js';
import { commit } from './commit.js';
import { compare } from './compare.js';
import { copyCommand } from './copy.js';
import { create } from './create.js';
import { deleteSnapshot } from './delete-snapshot.js';
import { diffCommand } from './diff.js';
import { exportCommand } from './export.js';
import { gcCommand } from './gc.js';
import { groupSnapshotCommand } from './group-snapshot.js';
import { importCommand } from './import.js';
import { info } from './info.js';
import { jobs } from './jobs.js';
import { journalCommand, markCommand, marksCommand, restoreCommand } from './journal.js';
import { map } from './map.js';
import { reset } from './reset.js';
import { replicateCommand } from './replicate.js';
import { replicationCommand } from './replication.js';
import { serveReplicaCommand } from './serve-replica.js';
import { resyncCommand } from './resync.js';
import { salvage } from './salvage.js';
import { mirrorCommand } from './mirror.js';
import { publishCommand } from './publish.js';
import { revert } from './revert.js';
import { serveEdgeCommand } from './serve-edge.js';
import { serveGroupCommand } from './serve-group.js';
import { serveNbdCommand } from './serve-nbd.js';
import { serveStoreCommand } from './serve-store.js';
import { shadowCommand } from './shadow.js';
import { snapshot } from './snapshot.js';
import { snapshots } from './snapshots.js';
import { stream } from './stream.js';
import { tour } from './tour.js';
import { versionsCommand } from './versions.js';
import { write } from './write.js';

/** Every subcommand, in the order `stratadisk --help` lists them. */
export const COMMANDS: readonly Command[] = [
  create,
  info,
  importCommand,
  write,
  exportCommand,
  copyCommand,
  snapshot,
  snapshots,
  revert,
  stream,
  reset,
  deleteSnapshot,
  commit,
  jobs,
  journalCommand,
  markCommand,
  marksCommand,
  restoreCommand,
  mirrorCommand,
  map,
  check,
  salvage,
  compare,
  resyncCommand,
  diffCommand,
  publishCommand,
  versionsCommand,
  gcCommand,
  serveNbdCommand,
  serveReplicaCommand,
  replicateCommand,
  replicationCommand,
  serveGroupCommand,
  serveStoreCommand,
  serveEdgeCommand,
  groupSnapshotCommand,
  shadowCommand,
  bench,
  tour,
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
