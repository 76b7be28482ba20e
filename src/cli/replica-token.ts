import { checkToken, readSecret, registerSecret } from '../util/secret.js';
import { UsageError, type CliIo } from './io.js';

export const REPLICA_TOKEN_ENV = 'STRATADISK_REPLICA_TOKEN';

/** The `--token-file` option shared by the replication commands (and `--token`, only to refuse it). */
export const REPLICA_TOKEN_OPTIONS = { 'token-file': { type: 'string' }, token: { type: 'string' } } as const;

/**
 * The shared replication token: from `--token-file FILE` (0600, ours) or $STRATADISK_REPLICA_TOKEN.
 * On the command line it is refused outright (every local user reads argv with `ps`), and never
 * repeated in the message.
 */
export async function readReplicaToken(values: Record<string, string | boolean | undefined>, io: CliIo, command: string): Promise<string> {
  if (typeof values.token === 'string') {
    registerSecret(values.token);
    throw new UsageError(`--token is refused: a token on the command line can be read by every local user (ps). Put it in $${REPLICA_TOKEN_ENV} or in a file of mode 0600 (--token-file FILE, or - for standard input).`, command);
  }
  const file = typeof values['token-file'] === 'string' ? values['token-file'] : undefined;
  const token = await readSecret({
    what: 'the replication token',
    ...(file !== undefined ? { file } : {}),
    env: REPLICA_TOKEN_ENV,
    ...(io.stdin ? { stdin: io.stdin as AsyncIterable<Uint8Array> } : {}),
  });
  if (token === undefined) {
    throw new UsageError(`replication needs a shared token on both sides: set $${REPLICA_TOKEN_ENV} or give --token-file FILE (mode 0600). Make one with \`openssl rand -hex 32\`.`, command);
  }
  checkToken(token, file !== undefined ? `The token in ${file === '-' ? 'standard input' : file}` : `The token in $${REPLICA_TOKEN_ENV}`);
  return token;
}
