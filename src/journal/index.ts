export { Journal, BASE_SNAPSHOT, REQUIREMENT as JOURNAL_REQUIREMENT, type JournalStatus } from './journal.js';
export { openJournaled, enableJournal, disableJournal } from './open.js';
export { restoreTo, type RestoreReport } from './restore.js';
export { parsePoint, type Point, type Mark } from './points.js';
export { exportDmLog, importDmLog, type DmLogExportReport, type DmLogImportReport } from './dm-log.js';
export { foldLog, retentionPoint, type FoldReport } from './checkpoint.js';
export { markGroupSnapshots, groupMarkLabel, vmMarkLabel } from './auto-marks.js';
