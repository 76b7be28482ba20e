/**
 * OPFS typings that TypeScript 5.9's lib.dom lacks: FileSystemSyncAccessHandle (dedicated
 * workers only), its `mode` option (Chromium 121+, Firefox 131+), and async iteration of a
 * directory (lib "DOM.AsyncIterable", which this project does not enable).
 */

/** https://fs.spec.whatwg.org/#api-filesystemsyncaccesshandle */
interface FileSystemReadWriteOptions {
  at?: number;
}

interface FileSystemSyncAccessHandle {
  read(buffer: ArrayBufferView | ArrayBuffer, options?: FileSystemReadWriteOptions): number;
  write(buffer: ArrayBufferView | ArrayBuffer, options?: FileSystemReadWriteOptions): number;
  truncate(newSize: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}

/**
 * "readwrite": exclusive (the default). "read-only": shared with other read-only handles only.
 * "readwrite-unsafe": shared with other readwrite-unsafe handles only; writers coordinate
 * themselves.
 */
type FileSystemSyncAccessHandleMode = 'readwrite' | 'read-only' | 'readwrite-unsafe';

interface FileSystemCreateSyncAccessHandleOptions {
  mode?: FileSystemSyncAccessHandleMode;
}

interface FileSystemFileHandle {
  createSyncAccessHandle(options?: FileSystemCreateSyncAccessHandleOptions): Promise<FileSystemSyncAccessHandle>;
}

interface FileSystemDirectoryHandle {
  keys(): AsyncIterableIterator<string>;
  values(): AsyncIterableIterator<FileSystemDirectoryHandle | FileSystemFileHandle>;
  entries(): AsyncIterableIterator<[string, FileSystemDirectoryHandle | FileSystemFileHandle]>;
}
