'use strict';
/**
 * Runs `@20minutes/s3rver` in its own process for test/node/helpers/s3-server.ts. Started with
 * `node --openssl-legacy-provider` (s3rver encrypts continuation tokens with DES, which
 * OpenSSL 3 has only in its legacy provider: without it every paginated listing fails with 500).
 * Configuration comes from the environment (the secret is never in argv): S3_TEST_DIR,
 * S3_TEST_BUCKET, S3_TEST_KEY_ID, S3_TEST_SECRET. Prints {"port": N} once listening.
 *
 * One fix to the server: s3rver lists keys in directory-walk order (readdir order, so neither
 * sorted nor stable), and its pagination skips keys by string comparison; S3 lists keys in
 * UTF-8 byte order. The listing below sorts the server's own full result in that order, then
 * applies start-after and max-keys, so pages are what S3 would give.
 */
const S3rver = require('@20minutes/s3rver');
const FilesystemStore = require('@20minutes/s3rver/lib/stores/filesystem.js');
const account = require('@20minutes/s3rver/lib/models/account.js');

const original = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function listObjects(bucket, options) {
  const all = await original.call(this, bucket, { ...options, startAfter: '', maxKeys: Infinity });
  const bytes = (s) => Buffer.from(s, 'utf8');
  const after = options.startAfter ? bytes(options.startAfter) : undefined;
  const objects = all.objects
    .filter((o) => after === undefined || Buffer.compare(bytes(o.key), after) > 0)
    .sort((a, b) => Buffer.compare(bytes(a.key), bytes(b.key)));
  const max = options.maxKeys === undefined ? Infinity : options.maxKeys;
  return { objects: objects.slice(0, max), commonPrefixes: all.commonPrefixes, isTruncated: objects.length > max };
};

const { S3_TEST_DIR: dir, S3_TEST_BUCKET: bucket, S3_TEST_KEY_ID: keyId, S3_TEST_SECRET: secret } = process.env;
account.DUMMY_ACCOUNT.createKeyPair(keyId, secret);
account.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: bucket, configs: [] }] });
server.run().then(
  ({ port }) => process.stdout.write(`${JSON.stringify({ port })}\n`),
  (e) => {
    process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  },
);
const stop = () => server.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// the parent went away: do not outlive it
process.stdin.on('end', stop);
process.stdin.resume();
