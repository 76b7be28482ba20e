/**
 * stratadisk/v86: a v86 hard disk on a stratadisk volume, and snapshots of the whole VM (disk +
 * machine state). Works with an in-process `Volume` or a `RemoteVolume` from `stratadisk/client`.
 */
export { V86Disk, coalesce, type DiskVolume, type V86DiskOptions, type V86DiskStats } from './disk-adapter.js';
export { installFlushBarrier, FLUSH_BARRIER_V86, type FlushBarrier, type FlushBarrierOptions, type GuestFlushTarget } from './flush-barrier.js';
export { VmSnapshots, type V86Machine, type SnapshotVolume, type VmSnapshotInfo, type VmSnapshotOptions, type VmRevertResult, type VmSnapshotsOptions, type SnapshotMarker } from './vm-snapshots.js';
export { MemoryStateStore, NamespaceStateStore, OpfsStateStore, stateFileName, type MachineStateStore } from './state-store.js';
export { encodeState, decodeState, MAX_STATE_BYTES } from './state-file.js';
export { fetchGuest, guestOptions, GUEST_FILES, GUEST_MEMORY, GUEST_READY, type GuestImages, type GuestBootOptions } from './guest.js';
export { SerialConsole, type V86Serial } from './serial-console.js';
