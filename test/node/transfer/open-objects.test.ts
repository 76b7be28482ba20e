/**
 * openObjectStore: which backend a URL opens, and the S3 configuration read from the AWS
 * variables (s3-env.ts). The S3 round trip itself is in s3-objects.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { openObjectStore } from '../../../src/transfer/open-objects.js';
import { parseCredentialsFile, parseS3Url, s3OptionsFromEnv } from '../../../src/transfer/s3-env.js';
import { HttpObjectStore } from '../../../src/transfer/http-objects.js';
import { S3ObjectStore } from '../../../src/transfer/s3-objects.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return isStrataError(e) ? e.code : `other: ${String(e)}`;
  }
}

const NOHOME = { HOME: '/nonexistent' };

describe('openObjectStore', () => {
  it('memory: is a new store; memory:NAME is one store per name', async () => {
    const a = await openObjectStore('memory:');
    const b = await openObjectStore('memory:');
    expect(a).toBeInstanceOf(MemoryObjectStore);
    expect(a).not.toBe(b);
    const n1 = await openObjectStore('memory:open-objects-test');
    await n1.put('k', new Uint8Array([1]));
    const n2 = await openObjectStore('memory:open-objects-test');
    expect(await n2.get('k')).toEqual(new Uint8Array([1]));
  });

  it('s3:// opens the S3 backend with the AWS variables; nothing is sent on open', async () => {
    const s = await openObjectStore('s3://my-bucket/images/prod', { env: { ...NOHOME, AWS_REGION: 'eu-central-1' } });
    expect(s).toBeInstanceOf(S3ObjectStore);
    expect(s.description).toBe('s3://my-bucket/images/prod');
  });

  it('a store server URL opens its object area with a token; plain http off loopback needs insecure', async () => {
    const token = 'tok-abcdefabcdefabcdefabcdefabcdefab';
    const s = await openObjectStore('http://127.0.0.1:7000/', { token });
    expect(s).toBeInstanceOf(HttpObjectStore);
    expect(s.description).toBe('http://127.0.0.1:7000/');
    expect(await openObjectStore('https://store.example:7000', { env: { STRATADISK_TOKEN: token } })).toBeInstanceOf(HttpObjectStore);
    expect(await code(openObjectStore('http://127.0.0.1:7000/', { env: {} }))).toBe('invalid-argument'); // no token
    expect(await code(openObjectStore('http://192.0.2.1:7000/', { token }))).toBe('invalid-argument');
    expect(await openObjectStore('http://192.0.2.1:7000/', { token, insecure: true })).toBeInstanceOf(HttpObjectStore);
    // a namespace path, or a token in the URL: refused, and the token is not repeated
    expect(await code(openObjectStore('http://127.0.0.1:7000/vol', { token }))).toBe('invalid-argument');
    const e = await openObjectStore('http://127.0.0.1:7000/#token=abcdefabcdefabcdefabcdefabcdefab', { token }).catch((x: unknown) => x as Error);
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).not.toContain('abcdefabcdefabcdefabcdefabcdefab');
  });

  it('unknown schemes are refused with what to give instead', async () => {
    expect(await code(openObjectStore('gs://bucket/x'))).toBe('invalid-argument');
    expect(await code(openObjectStore(''))).toBe('invalid-argument');
    expect(await code(openObjectStore('s3://Bad_Bucket/x', { env: NOHOME }))).toBe('invalid-argument');
    expect(await code(openObjectStore('s3://bucket/../x', { env: NOHOME }))).toBe('invalid-argument');
    expect(await code(openObjectStore('s3://bucket/x?versionId=1', { env: NOHOME }))).toBe('invalid-argument');
  });
});

describe('S3 configuration from the environment', () => {
  it('parses s3://bucket[/prefix[/]]', () => {
    expect(parseS3Url('s3://b-1')).toEqual({ bucket: 'b-1', prefix: '' });
    expect(parseS3Url('s3://b-1/')).toEqual({ bucket: 'b-1', prefix: '' });
    expect(parseS3Url('s3://b-1/a/b/')).toEqual({ bucket: 'b-1', prefix: 'a/b' });
  });

  it('endpoint, region and path style follow the AWS CLI variables', async () => {
    expect(await s3OptionsFromEnv('s3://b/p', NOHOME)).toEqual({ bucket: 'b', prefix: 'p', region: 'us-east-1' });
    const r2 = await s3OptionsFromEnv('s3://b/p', { ...NOHOME, AWS_ENDPOINT_URL: 'https://acct.r2.cloudflarestorage.com', AWS_ENDPOINT_URL_S3: 'https://s3-only.example.com', AWS_DEFAULT_REGION: 'auto', AWS_S3_FORCE_PATH_STYLE: 'false' });
    expect(r2).toMatchObject({ endpoint: 'https://s3-only.example.com', region: 'auto', pathStyle: false });
    expect((await s3OptionsFromEnv('s3://b', { ...NOHOME, AWS_REGION: 'eu-west-1', AWS_DEFAULT_REGION: 'auto' })).region).toBe('eu-west-1');
    expect(await code(s3OptionsFromEnv('s3://b', { ...NOHOME, AWS_S3_FORCE_PATH_STYLE: 'maybe' }))).toBe('invalid-argument');
    const creds = await s3OptionsFromEnv('s3://b', { ...NOHOME, AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 'secret-value-123456', AWS_SESSION_TOKEN: 'session-token-123456' });
    expect(creds.credentials).toEqual({ accessKeyId: 'AKIA1', secretAccessKey: 'secret-value-123456', sessionToken: 'session-token-123456' });
  });

  it('reads the AWS shared credentials format (profiles, comments, [profile x])', () => {
    const text = '# c\n[default]\naws_access_key_id=A1\naws_secret_access_key = S1-xxxxxxxxxx\n; c\n[profile ci]\nAWS_ACCESS_KEY_ID = A2\naws_secret_access_key=S2-xxxxxxxxxx\naws_session_token = T2-xxxxxxxxxx\n';
    expect(parseCredentialsFile(text, 'default', 'f')).toEqual({ accessKeyId: 'A1', secretAccessKey: 'S1-xxxxxxxxxx' });
    expect(parseCredentialsFile(text, 'ci', 'f')).toEqual({ accessKeyId: 'A2', secretAccessKey: 'S2-xxxxxxxxxx', sessionToken: 'T2-xxxxxxxxxx' });
    expect(() => parseCredentialsFile(text, 'other', 'f')).toThrow(/\[other\]/);
  });
});
