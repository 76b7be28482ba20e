/**
 * Secrets (store-server tokens now; S3 keys next): where they are read from, how strong a
 * token must be, and how they are kept out of messages. Node only (files, process.env).
 *
 * A secret comes from, in this order: a file (`--token-file FILE`, or `-` for standard input),
 * an argument given on the command line (accepted, with a warning: every local user sees argv
 * in `ps`), an environment variable (e.g. STRATADISK_TOKEN). A secret file must belong to the
 * user running stratadisk (or root) and give nobody else any access (mode 0600 or 0400), as ssh
 * requires of a private key. Every secret read here is registered, and `redactSecrets` replaces
 * it in any text about to be printed.
 */
import { randomBytes } from 'node:crypto';
import { constants, fstatSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { StrataError } from '../errors.js';
import { registerSecret } from './redact.js';

export { REDACTED, redactSecrets, redactUrl, registerSecret } from './redact.js';

/** Largest secret file read (a token is 43 characters; a key pair a few hundred). */
const MAX_SECRET_BYTES = 4096;
/** A new random token: 32 bytes (256 bits), base64url (43 characters). */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

/** RFC 6750 b64token: the characters a bearer token may hold. */
const B64TOKEN = /^[A-Za-z0-9._~+/-]+=*$/;

/**
 * Refuse a token weaker than 128 bits: it must be a bearer token (letters, digits, `-._~+/`, then
 * `=` padding) of at least 32 hex digits or, with any other letters, at least 22 characters.
 */
export function checkToken(token: string, where = 'the token'): void {
  if (!B64TOKEN.test(token)) throw new StrataError('invalid-argument', `${where} may hold only letters, digits and - . _ ~ + / (then = padding); generate one with \`openssl rand -base64 32\`, or let serve-store generate it.`);
  const hexOnly = /^[0-9a-fA-F]+$/.test(token);
  const need = hexOnly ? 32 : 22;
  if (token.replace(/=+$/, '').length < need) {
    throw new StrataError('invalid-argument', `${where} is too short to resist guessing: give at least 128 bits (${need} ${hexOnly ? 'hex digits' : 'base64url characters'}); generate one with \`openssl rand -base64 32\`, or let serve-store generate it.`);
  }
}

/**
 * Read a secret file: it must be a regular file of the current user (or root) that nobody else
 * may read or write (mode 0600/0400), at most 4 KiB; surrounding whitespace is dropped.
 */
export async function readSecretFile(path: string, what = 'the secret', maxBytes = MAX_SECRET_BYTES): Promise<string> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StrataError('not-found', `The file ${path} for ${what} does not exist.`, { cause: e });
    if (code === 'ELOOP') throw new StrataError('invalid-argument', `${path} is a symbolic link; give the file holding ${what} itself.`, { cause: e });
    throw new StrataError('io', `Cannot open ${path} for ${what} (${code ?? String(e)}).`, { cause: e });
  }
  try {
    const st = fstatSync(fh.fd);
    if (!st.isFile()) throw new StrataError('invalid-argument', `${path} is not a regular file; put ${what} in a file of mode 0600.`);
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid && st.uid !== 0) throw new StrataError('invalid-argument', `${path} belongs to another user (uid ${st.uid}); ${what} must be in a file of your own, mode 0600.`);
    if ((st.mode & 0o077) !== 0) {
      throw new StrataError('invalid-argument', `${path} is readable or writable by others (mode 0${(st.mode & 0o777).toString(8)}); ${what} is refused. Run \`chmod 600 ${path}\` (and consider the secret exposed).`);
    }
    if (st.size > maxBytes) throw new StrataError('invalid-argument', `${path} is larger than ${maxBytes} bytes; it does not hold just ${what}.`);
    const buf = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > maxBytes) throw new StrataError('invalid-argument', `${path} is larger than ${maxBytes} bytes; it does not hold just ${what}.`);
    const secret = buf.subarray(0, bytesRead).toString('utf8').trim();
    if (secret === '') throw new StrataError('invalid-argument', `${path} is empty; it should hold ${what}.`);
    registerSecret(secret);
    return secret;
  } finally {
    await fh.close();
  }
}

/** Write `secret` to a new file `path`, mode 0600; never through a symlink, never over an existing file. */
export async function writeSecretFile(path: string, secret: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new StrataError('exists', `${path} already exists; a new secret is written only to a new file.`, { cause: e });
    throw new StrataError('io', `Cannot create ${path} (${code ?? String(e)}).`, { cause: e });
  }
  try {
    await fh.chmod(0o600); // whatever the umask
    await fh.writeFile(`${secret}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Read standard input to its end (at most 4 KiB), trimmed: `--token-file -`. */
export async function readSecretStdin(stdin: AsyncIterable<Uint8Array>, what = 'the secret'): Promise<string> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of stdin) {
    n += c.length;
    if (n > MAX_SECRET_BYTES) throw new StrataError('invalid-argument', `Standard input holds more than ${MAX_SECRET_BYTES} bytes; it should hold just ${what}.`);
    chunks.push(c);
  }
  const secret = Buffer.concat(chunks).toString('utf8').trim();
  if (secret === '') throw new StrataError('invalid-argument', `Standard input was empty; it should hold ${what}.`);
  registerSecret(secret);
  return secret;
}

export interface SecretSources {
  /** what the secret is, for messages: "the store server's token" */
  what: string;
  /** a file path, or `-` for standard input */
  file?: string;
  /** the secret as given on the command line (accepted with a warning) */
  argument?: string;
  /** how the argument was given, for the warning: "--token" */
  argumentName?: string;
  /** the environment variable to read last, e.g. STRATADISK_TOKEN */
  env?: string;
  stdin?: AsyncIterable<Uint8Array>;
  /** called with the warning when the secret came from the command line */
  warn?: (message: string) => void;
  /** the environment (default process.env) */
  environment?: Record<string, string | undefined>;
}

/** The secret from the first source that has one (file, argument, environment), or undefined. */
export async function readSecret(src: SecretSources): Promise<string | undefined> {
  if (src.file !== undefined && src.argument !== undefined) {
    throw new StrataError('invalid-argument', `Give ${src.what} once: either ${src.argumentName ?? 'on the command line'} or in a file, not both.`);
  }
  if (src.file === '-') {
    if (!src.stdin) throw new StrataError('invalid-argument', `No standard input to read ${src.what} from.`);
    return readSecretStdin(src.stdin, src.what);
  }
  if (src.file !== undefined) return readSecretFile(src.file, src.what);
  if (src.argument !== undefined) {
    registerSecret(src.argument);
    src.warn?.(argvWarning(src));
    return src.argument;
  }
  const v = src.env !== undefined ? (src.environment ?? process.env)[src.env] : undefined;
  if (v !== undefined && v !== '') {
    registerSecret(v);
    return v;
  }
  return undefined;
}

/** The warning for a secret given on the command line. */
export function argvWarning(src: Pick<SecretSources, 'what' | 'argumentName' | 'env'>): string {
  const alt = [`a file of mode 0600 (--token-file FILE, or - for standard input)`, ...(src.env ? [`$${src.env}`] : [])].join(' or ');
  return `warning: ${src.what} was given on the command line (${src.argumentName ?? 'an argument'}), where every local user can read it (ps); pass it in ${alt}.`;
}
