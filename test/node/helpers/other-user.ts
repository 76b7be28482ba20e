/**
 * Run a command as another, unprivileged local user: the attacker of the security tests (a
 * second account on the same machine). Needs root on Linux and `setpriv` (util-linux): the
 * command runs under a numeric uid/gid that no account in /etc/passwd owns, with no
 * supplementary groups, so nothing has to be created in the system's user database and nothing
 * is left behind. Elsewhere `otherUser` is undefined and `otherUserSkip` says why, for
 * `describe.skipIf(!otherUser)`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface OtherUser {
  uid: number;
  gid: number;
  /** Run `cmd args` as this user (HOME=/tmp, a plain PATH); never throws on a non-zero exit. */
  run(cmd: string, args: string[], opts?: { env?: Record<string, string>; input?: string | Buffer; timeoutMs?: number; cwd?: string }): Promise<RunResult>;
}

function unusedId(): number | string {
  const wanted = Number(process.env.STRATADISK_TEST_OTHER_UID ?? 64123);
  let passwd = '';
  let group = '';
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
    group = readFileSync('/etc/group', 'utf8');
  } catch {
    return 'cannot read /etc/passwd';
  }
  const taken = (db: string) => db.split('\n').some((l) => l.split(':')[2] === String(wanted));
  if (taken(passwd) || taken(group)) return `uid/gid ${wanted} belongs to an account here; set STRATADISK_TEST_OTHER_UID to a free one`;
  return wanted;
}

function detect(): OtherUser | string {
  if (process.platform !== 'linux') return 'needs Linux (setpriv)';
  if (process.getuid?.() !== 0) return 'needs root to run commands as a second user';
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'setpriv (util-linux) is not installed';
  }
  const id = unusedId();
  if (typeof id === 'string') return id;
  return {
    uid: id,
    gid: id,
    run(cmd, args, opts = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn('setpriv', ['--reuid', String(id), '--regid', String(id), '--clear-groups', '--', cmd, ...args], {
          env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', HOME: '/tmp', LANG: 'C.UTF-8', ...opts.env },
          cwd: opts.cwd ?? '/tmp',
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
        child.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({ code, signal, stdout, stderr });
        });
        child.stdin.on('error', () => {});
        child.stdin.end(opts.input ?? '');
      });
    },
  };
}

const found = detect();
export const otherUser: OtherUser | undefined = typeof found === 'string' ? undefined : found;
export const otherUserSkip: string | undefined = typeof found === 'string' ? `no second user: ${found}` : undefined;
