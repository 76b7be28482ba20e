/**
 * `s3://bucket/prefix` and the usual AWS environment variables -> S3ObjectStoreOptions (Node:
 * reads the credentials file). Variables, as the AWS CLI reads them:
 * - endpoint: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (default: AWS in the region);
 * - region: AWS_REGION, else AWS_DEFAULT_REGION (default us-east-1; R2 uses `auto`);
 * - AWS_S3_FORCE_PATH_STYLE=true|false (default: path style when an endpoint is given);
 * - credentials: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else the
 *   profile AWS_PROFILE (default `default`) of the INI file AWS_SHARED_CREDENTIALS_FILE, else
 *   of ~/.aws/credentials when it exists. The file must be the user's own, mode 0600 or 0400
 *   (src/util/secret.ts); every secret read is registered for redaction.
 * Credentials are never taken from the URL or the command line.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isStrataError, StrataError } from '../errors.js';
import { readSecretFile, registerSecret } from '../util/secret.js';
import { OBJECT_KEY } from './object-store.js';
import type { S3Credentials, S3ObjectStoreOptions } from './s3-objects.js';

type Env = Record<string, string | undefined>;

/** Bucket and prefix of `s3://bucket[/prefix]`. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/?#]*)(?:\/([^?#]*))?$/.exec(url);
  if (!m) throw new StrataError('invalid-argument', `"${url.replace(/[?#].*$/, '').slice(0, 200)}" is not an s3:// URL without query or fragment; give s3://BUCKET/PREFIX.`);
  const bucket = m[1]!;
  if (bucket.includes('@') || bucket.includes(':')) {
    throw new StrataError('invalid-argument', 'Credentials (or a port) do not go in an s3:// URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_SHARED_CREDENTIALS_FILE) and the endpoint in AWS_ENDPOINT_URL_S3.');
  }
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  if (prefix !== '' && !OBJECT_KEY.test(prefix)) {
    throw new StrataError('invalid-argument', `The prefix "${prefix.slice(0, 80)}" of ${url.slice(0, 200)} is not allowed: use letters, digits, '.', '_', '-', '@' in '/'-separated segments.`);
  }
  return { bucket, prefix };
}

/** The options for `s3://bucket/prefix` from `env` (default process.env). */
export async function s3OptionsFromEnv(url: string, env: Env = process.env): Promise<S3ObjectStoreOptions> {
  const { bucket, prefix } = parseS3Url(url);
  const endpoint = nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  const region = nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? 'us-east-1';
  const force = nonEmpty(env.AWS_S3_FORCE_PATH_STYLE)?.toLowerCase();
  if (force !== undefined && !['true', 'false', '1', '0'].includes(force)) throw new StrataError('invalid-argument', 'AWS_S3_FORCE_PATH_STYLE must be true or false.');
  const credentials = await s3CredentialsFromEnv(env);
  return {
    bucket,
    prefix,
    region,
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(force !== undefined ? { pathStyle: force === 'true' || force === '1' } : {}),
    ...(credentials ? { credentials } : {}),
  };
}

/** Credentials from the environment, else from the credentials file; undefined when there are none. */
export async function s3CredentialsFromEnv(env: Env = process.env): Promise<S3Credentials | undefined> {
  const id = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secret = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  if (id !== undefined || secret !== undefined) {
    if (id === undefined || secret === undefined) throw new StrataError('invalid-argument', 'Set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or neither, and use a credentials file).');
    registerSecret(secret);
    const token = nonEmpty(env.AWS_SESSION_TOKEN);
    if (token !== undefined) registerSecret(token);
    return { accessKeyId: id, secretAccessKey: secret, ...(token !== undefined ? { sessionToken: token } : {}) };
  }
  const named = nonEmpty(env.AWS_SHARED_CREDENTIALS_FILE);
  const home = nonEmpty(env.HOME) ?? homedir();
  const file = named ?? join(home, '.aws', 'credentials');
  const profile = nonEmpty(env.AWS_PROFILE) ?? 'default';
  let text: string;
  try {
    text = await readSecretFile(file, 'the S3 secret key', 64 << 10);
  } catch (e) {
    if (named === undefined && isStrataError(e, 'not-found')) return undefined;
    throw e;
  }
  return parseCredentialsFile(text, profile, file);
}

/** The profile's keys from an AWS shared credentials file (INI). */
export function parseCredentialsFile(text: string, profile: string, file: string): S3Credentials {
  const values = new Map<string, string>();
  let section: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[\s*(?:profile\s+)?([^\]]+?)\s*\]$/.exec(line);
    if (head) {
      section = head[1];
      continue;
    }
    const kv = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (kv && section === profile) values.set(kv[1]!.toLowerCase(), kv[2]!.trim());
  }
  const id = values.get('aws_access_key_id');
  const secret = values.get('aws_secret_access_key');
  const token = values.get('aws_session_token');
  if (secret) registerSecret(secret);
  if (token) registerSecret(token);
  if (!id || !secret) {
    throw new StrataError('invalid-argument', `${file} has no aws_access_key_id and aws_secret_access_key in the profile [${profile.slice(0, 64)}]; add them or set AWS_PROFILE.`);
  }
  return { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}
