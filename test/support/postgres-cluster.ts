import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private PostgreSQL cluster for one test file: initdb into a temporary folder, a postmaster
 * on a free port of 127.0.0.1, and a socket in that folder. Tests that stop PostgreSQL (the
 * database going away under a running server) use it, so that the shared server on 5432, which
 * other test files use at the same time, is never touched.
 *
 * PostgreSQL refuses to run as root: as root, every PostgreSQL command runs as the `postgres`
 * system user (runuser) and the folder is handed to that user. The binaries are taken from
 * FLEXI_TEST_PG_BIN, else the newest /usr/lib/postgresql/N/bin (Debian), else the PATH.
 */
export interface Cluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres — the maintenance database. */
  url: string;
  port: number;
  /** The temporary folder: data/, the socket and postgres.log. */
  dir: string;
  /** pg_ctl stop -m MODE: `immediate` is a crash (no checkpoint, every connection cut at once). */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** pg_ctl start on the same port and folder; resolves once PostgreSQL accepts connections. */
  start(): Promise<void>;
  /** Creates a database and answers its URL. */
  createDatabase(name: string): Promise<string>;
  /** The server's log so far (for failure messages). */
  log(): string;
  /** Whether PostgreSQL runs (started and not stopped since). */
  isRunning(): boolean;
  /** Stops PostgreSQL (immediate) if it runs and removes the folder. Harmless when called twice. */
  destroy(): Promise<void>;
}

const IS_ROOT = process.getuid?.() === 0;

function binDir(): string {
  if (process.env.FLEXI_TEST_PG_BIN) return process.env.FLEXI_TEST_PG_BIN;
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length) return join(base, versions[0], 'bin');
  }
  return '';
}

const BIN = binDir();
const bin = (name: string): string => (BIN ? join(BIN, name) : name);

/** The command line that runs a PostgreSQL binary as the right user. */
function asPostgres(name: string, args: string[]): [string, string[]] {
  return IS_ROOT ? ['runuser', ['-u', 'postgres', '--', bin(name), ...args]] : [bin(name), args];
}

function run(name: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const [command, argv] = asPostgres(name, args);
  return new Promise((resolve, reject) => {
    execFile(command, argv, { encoding: 'utf8', timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${name} ${args.join(' ')} failed: ${error.message}\n${stderr}${stdout}`));
      else resolve(stdout);
    });
  });
}

/** A port nothing listens on right now (PostgreSQL binds it a moment later; a start that loses the race is retried). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Clusters still running, stopped when the test process exits however it exits. */
const live = new Map<string, () => void>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const stopNow of live.values()) stopNow();
  });
}

export async function startCluster(): Promise<Cluster> {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'flexi-pg-cluster-'));
  const data = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  if (IS_ROOT) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  } else {
    mkdirSync(data, { mode: 0o700 });
  }
  let running = false;
  let port = 0;

  const stopSync = (): void => {
    if (running) spawnSync(...asPostgres('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '30']), { stdio: 'ignore' });
    running = false;
    rmSync(dir, { recursive: true, force: true });
  };
  live.set(dir, stopSync);

  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  /** -w waits until the server accepts connections; pg_isready confirms it over TCP. */
  const startOn = async (p: number): Promise<void> => {
    // fsync off: the tests crash the postmaster, never the machine, so the OS keeps every
    // written page; what a crash (immediate stop) loses or keeps is decided by the WAL alone.
    const options = `-p ${p} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`;
    await run('pg_ctl', ['start', '-D', data, '-l', logFile, '-w', '-t', '60', '-o', options]);
    running = true;
    await run('pg_isready', ['-h', '127.0.0.1', '-p', String(p), '-t', '30']);
  };

  try {
    await run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync']);
    let lastError: unknown;
    for (let attempt = 0; attempt < 3 && !running; attempt++) {
      port = await freePort();
      try {
        await startOn(port);
      } catch (err) {
        lastError = err;
      }
    }
    if (!running) throw new Error(`could not start a private PostgreSQL cluster in ${dir}: ${String(lastError)}\n${log()}`);
  } catch (err) {
    stopSync();
    live.delete(dir);
    throw err;
  }

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    dir,
    log,
    isRunning: () => running,
    async stop(mode) {
      await run('pg_ctl', ['stop', '-D', data, '-m', mode, '-w', '-t', '60']);
      running = false;
    },
    async start() {
      await startOn(port);
    },
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`createDatabase: '${name}' is not a plain lower-case identifier`);
      await new Promise<void>((resolve, reject) => {
        execFile('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', `CREATE DATABASE ${name}`], { encoding: 'utf8' }, (error, _out, stderr) =>
          error ? reject(new Error(`CREATE DATABASE ${name} failed: ${stderr || error.message}`)) : resolve(),
        );
      });
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async destroy() {
      if (!live.has(dir)) return;
      live.delete(dir);
      try {
        if (running) await run('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '60']);
      } finally {
        running = false;
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
