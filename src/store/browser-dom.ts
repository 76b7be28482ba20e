/**
 * OPFS typings that TypeScript 5.9's lib.dom lacks: FileSystemSyncAccessHandle (dedicated
 * workers only), its `mode` option (Chromium 121+, Firefox 131+), and async iteration of a
 * directory (lib "DOM.AsyncIterable", which this project does not enable).
 *
 * A module with `declare global` rather than a loose .d.ts, so that tsc emits it into dist and
 * the published opfs.d.ts imports it: consumers on TS 5.9 get the same globals. Only
 * interfaces (which merge) are declared, so a later lib.dom that has them does not clash.
 */
declare global {
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

  interface FileSystemCreateSyncAccessHandleOptions {
    /**
     * "readwrite": exclusive (the default). "read-only": shared with other read-only handles
     * only. "readwrite-unsafe": shared with other readwrite-unsafe handles only.
     */
    mode?: 'readwrite' | 'read-only' | 'readwrite-unsafe';
  }

  interface FileSystemFileHandle {
    createSyncAccessHandle(options?: FileSystemCreateSyncAccessHandleOptions): Promise<FileSystemSyncAccessHandle>;
  }

  interface FileSystemDirectoryHandle {
    keys(): AsyncIterableIterator<string>;
    values(): AsyncIterableIterator<FileSystemDirectoryHandle | FileSystemFileHandle>;
    entries(): AsyncIterableIterator<[string, FileSystemDirectoryHandle | FileSystemFileHandle]>;
  }
}

export {};
