/**
 * Resync by segment checksums with valid flags (issue 17 part 2): checksums kept per volume,
 * sides (volume, raw store, remote), the engine, and a side served over a Link.
 */
export { SegmentSums, DEFAULT_SEGMENT_SIZE, bindingOf, type SegmentSumsOptions, type RefreshOptions, type RefreshResult } from './segment-sums.js';
export { SUMS_SLOTS, MAX_SEGMENTS, type SumsBinding } from './sums-format.js';
export { VolumeSide, StoreSide, type ResyncSide } from './side.js';
export { resync, type ResyncOptions, type ResyncResult } from './resync.js';
export { progressIn, PROGRESS_SLOTS, type ProgressStore, type ResyncProgress } from './progress.js';
export { serveResyncSide, remoteSide, RemoteSide, type WireCount } from './remote.js';
export { PROTOCOL as RESYNC_PROTOCOL, MAX_IO as RESYNC_MAX_IO, MAX_SEGMENTS_PER_REQUEST } from './protocol.js';
