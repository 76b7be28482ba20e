/**
 * stratadisk: the neutral entry point (browser, workers, edge, Node). Node-only stores and the
 * CLI live in `stratadisk/node`.
 */
export { StrataError, isStrataError, type ErrorCode } from './errors.js';
export { BaseStore, checkName, type Store, type StoreNamespace, type OpenOptions } from './store/store.js';
export { MemoryStore, MemoryNamespace, MemoryBacking } from './store/memory.js';
export { FaultController, FaultNamespace, FaultStore, type FaultPlan, type CrashMode, type TearMode } from './store/fault.js';
export { Volume, DEFAULT_BLOCK_SIZE, type CreateVolumeOptions, type OpenVolumeOptions, type SnapshotInfo, type VolumeInfo, type VolumeReader } from './volume/volume.js';
export { copyVolume, type CopyOptions, type CopyReport, type CopiedLayer } from './transfer/copy.js';
export type { Extent } from './volume/map.js';
export type { WriteObserver, ObserverHandle, ObserverMode, ObserverFailure, VolumeEvent, WriteEvent, FlushEvent, LayerWrite, ByteRange } from './volume/write-observer.js';
export type { CheckReport, CheckProblem } from './volume/check.js';
export type { NewerState } from './volume/newer-state.js';
export { Salvage, type SalvageRange, type SalvageSurvey, type SalvageView, type SalvageViewResult } from './volume/salvage.js';
export type { SalvageLayerInfo } from './volume/salvage-layer.js';
export { loadKernels } from './wasm/index.js';
// Browser stores: safe to import anywhere (they touch browser APIs only when used).
export { OpfsNamespace, OpfsStore, OPFS_HANDLE_MODE, type OpfsHandleMode, type OpfsNamespaceOptions } from './store/opfs.js';
export { IdbNamespace, IdbStore, DEFAULT_IDB_CHUNK_SIZE, type IdbNamespaceOptions } from './store/idb.js';
export { requestPersistence, storageEstimate, type StorageEstimate } from './store/browser-storage.js';
// Consistency groups: freeze/flush/thaw across workers, tabs and processes.
export * from './consistency/index.js';
// Copy-on-read volumes on a remote image (HTTP range requests) and the stream job.
export { HttpStore, type HttpStoreOptions, type HttpStats, type ImagePin } from './store/http.js';
export { RemoteNamespace, type RemoteNamespaceOptions } from './store/remote.js';
export { RemoteBase, type RemoteOptions, type ProvisioningInfo, type CreateRemoteVolumeOptions } from './volume/remote-base.js';
export { StreamJob, streamVolume, type StreamJobOptions } from './jobs/stream.js';
export { ShadowExportJob } from './jobs/shadow-export.js';
export { ShadowVolume, ShadowReader, ShadowCopyReader, toEndpoint, sharedMemoryAvailable, type ShadowVolumeOptions, type CreateShadowOptions, type ShadowInfo, type ShadowReaderOptions, type ShadowEndpoint, type OnFull, type ReadStats } from './shadow/index.js';
// Block jobs: the Job interface, consolidation (delete-snapshot / commit online), mirror, resume.
export { BaseJob, newJobId, PROGRESS_MS, type Job, type JobEvent, type JobInfo, type JobOptions, type JobProgress, type JobState } from './jobs/job.js';
export { consolidate, planConsolidation, ConsolidateJob, type ConsolidateRequest, type ConsolidateOptions, type ConsolidationPlan } from './jobs/consolidate.js';
export { mirror, MirrorJob, type MirrorOptions } from './jobs/mirror.js';
export { mirrorRaw, RawMirrorJob, RawImageMirror, type RawMirrorOptions } from './jobs/mirror-raw.js';
export { resumeJobs, pendingMerges, type ResumeOptions } from './jobs/resume.js';
export { JobJournal, type JobRecord } from './jobs/job-journal.js';
export { JobRegistry } from './jobs/registry.js';
// Published images: object stores, publish, versions, gc, and the reader the edge worker uses.
export type { ObjectStore, ObjectInfo, ObjectRange } from './transfer/object-store.js';
export { MemoryObjectStore } from './transfer/memory-objects.js';
export { S3ObjectStore, type S3Credentials, type S3ObjectStoreOptions } from './transfer/s3-objects.js';
export { R2ObjectStore, type R2BucketLike } from './transfer/r2-objects.js';
export { FaultObjectStore } from './transfer/fault-objects.js';
export { HttpObjectStore, type HttpObjectStoreOptions } from './transfer/http-objects.js';
export { publish, type PublishSource, type PublishOptions, type PublishProgress, type PublishResult } from './transfer/publish.js';
export { openPublishedVersion, type PublishedVersion, type VersionRef, type OpenPublishedOptions } from './transfer/published-version.js';
export { listVersions, type StoreVersions, type VersionInfo, type TagInfo } from './transfer/versions.js';
export { gc, type GcOptions, type GcResult } from './transfer/gc.js';
export * from './journal/index.js';
// Replication transports: token handshake, heartbeats, WebSocket client, tab-to-tab links, fault injection.
export * from './replication/links/index.js';
