/** Shadow copies of an in-place volume, and passive readers (see README "Shadow copies"). */
export { ShadowVolume, type ShadowVolumeOptions, type CreateShadowOptions, type ShadowInfo } from './shadow-volume.js';
export { ShadowReader, type ShadowReaderOptions } from './reader.js';
export { ShadowCopyReader, type ReadStats } from './read-path.js';
export { toEndpoint, type ShadowEndpoint } from './protocol.js';
export { sharedMemoryAvailable } from './shared-bits.js';
export type { OnFull } from './catalog.js';
