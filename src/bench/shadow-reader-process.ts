/**
 * A passive shadow reader in a separate Node process (child_process.fork with serialization
 * 'advanced'): no shared memory, so it uses the message path over the IPC channel and reads
 * the diff areas' durable logs from the directory. The first message gives its parameters.
 */
import { ShadowReader } from '../shadow/reader.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { NodeFileStore } from '../store/node-file.js';
import { verifyLoop, type VerifyOptions } from './shadow-load.js';

interface Params {
  t: 'params';
  volumePath: string;
  shadowDir: string;
  copy: string;
  sums: BigUint64Array;
  verify: VerifyOptions;
}

const send = (m: unknown): void => void process.send!(m);

process.once('message', (raw) => {
  const p = raw as Params;
  void (async () => {
    try {
      const volume = await NodeFileStore.open(p.volumePath, { readOnly: true });
      const reader = await ShadowReader.connect(process, { copy: p.copy, volume, areas: new NodeDirNamespace(p.shadowDir, { readOnly: true }), mode: 'message' });
      send({ t: 'ready' });
      const r = await verifyLoop(reader, p.sums, p.verify);
      await reader.close();
      send({ t: 'done', result: r });
    } catch (e) {
      send({ t: 'error', message: String(e), code: (e as { code?: string }).code });
    }
  })();
});
