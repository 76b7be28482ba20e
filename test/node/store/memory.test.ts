import { MemoryBacking, MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { namespaceConformance, storeConformance } from './conformance.js';

storeConformance('MemoryStore', async () => {
  const backing = new MemoryBacking();
  return {
    open: async () => new MemoryStore(backing),
    reopen: async () => new MemoryStore(backing),
    openReadOnly: async () => new MemoryStore(backing, { readOnly: true }),
    cleanup: async () => {},
  };
});

storeConformance('MemoryNamespace store', async () => {
  const ns = new MemoryNamespace();
  return {
    open: () => ns.open('disk', { create: true }),
    reopen: () => ns.open('disk'),
    openReadOnly: () => ns.open('disk', { readOnly: true }),
    cleanup: async () => {},
  };
});

namespaceConformance('MemoryNamespace', async () => {
  const namespace = new MemoryNamespace();
  return {
    namespace,
    reopen: async () => new MemoryNamespace({ files: namespace.files }),
    readOnly: async () => new MemoryNamespace({ files: namespace.files, readOnly: true }),
    cleanup: async () => {},
  };
});
