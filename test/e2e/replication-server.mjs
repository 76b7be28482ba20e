// A Node replica server for test/e2e/replication.test.ts, run with fork() so the test can kill -9
// it: a Secondary on a node-dir volume behind listenReplicaWs, from the built dist/ (npm run
// build). argv: DIR PORT ORIGIN SIZE BLOCKSIZE; the token comes in the environment
// (STRATADISK_REPLICA_TOKEN), never argv. IPC: {t:'ready', port} once listening; answers
// {t:'digest'} with the SHA-256 of the whole volume and {t:'status'} with the secondary's status.
import { createHash } from 'node:crypto';
import { NodeDirNamespace } from '../../dist/store/node-dir.js';
import { Volume } from '../../dist/volume/volume.js';
import { Secondary } from '../../dist/replication/secondary.js';
import { listenReplicaWs } from '../../dist/replication/links/node.js';

const [dir, port, origin, size, blockSize] = process.argv.slice(2);
const token = process.env.STRATADISK_REPLICA_TOKEN;
const ns = new NodeDirNamespace(dir, { create: true });
let volume;
try {
  volume = await Volume.open(ns);
} catch (e) {
  if (e?.code !== 'not-found') throw e;
  volume = await Volume.create(ns, { size: Number(size), blockSize: Number(blockSize) });
}
const secondary = await Secondary.open(volume, { label: dir });
const server = await listenReplicaWs({ host: '127.0.0.1', port: Number(port), token, origins: [origin], onLink: (link) => secondary.accept(link) });
process.on('message', async (m) => {
  if (m?.t === 'digest') {
    const data = await volume.read(0, volume.size);
    process.send({ t: 'digest', digest: createHash('sha256').update(data).digest('hex') });
  } else if (m?.t === 'status') {
    process.send({ t: 'status', status: secondary.status() });
  } else if (m?.t === 'stop') {
    await secondary.close();
    await server.close();
    await volume.close();
    process.send({ t: 'stopped' }, () => process.exit(0));
  }
});
process.send({ t: 'ready', port: server.port });
