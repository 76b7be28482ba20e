/** stratadisk for Node: everything in `stratadisk`, plus file/raw-device stores and directory namespaces. */
export * from './index.js';
export { NodeFileStore } from './store/node-file.js';
export { NodeDirNamespace } from './store/node-dir.js';
export { serveStore, type StoreServer, type StoreServerOptions } from './store/store-server.js';
export { serveNbd } from './interop/nbd/index.js';
export { exportQcow2 } from './interop/qcow2/export.js';
export { listenGroup, connectGroup, socketLink } from './consistency/node-socket.js';
export { attachWorker, joinFromParent, type GroupPortMessage } from './consistency/worker-threads.js';
export { encodeFrame, FrameReader } from './consistency/framing.js';
export { serveControl, requestControl, CONTROL_SOCKET, type ControlRequest, type ControlMessage, type ControlServer } from './jobs/control.js';
export { DirObjectStore } from './transfer/dir-objects.js';
export { openObjectStore } from './transfer/open-objects.js';
export { storeObjectArea } from './transfer/store-server-objects.js';
export * from './replication/links/node.js';
