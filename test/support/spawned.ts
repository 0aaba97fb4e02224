import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const CLI_JS = resolve(REPO_ROOT, 'dist', 'cli.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A server process started by a test, asynchronously (never spawnSync: jest would wait on
 * it). It runs in its own process group so that `killGroup` also reaches grandchildren
 * (npm → sh → node) even when a signal left one of them orphaned.
 */
export interface Spawned {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` on stderr; rejects when the process exits first or after `timeoutMs`. */
  waitForStderr(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  exited: Promise<Exit>;
  /** SIGKILL to the whole process group; harmless when it is gone already. */
  killGroup(): void;
}

/** The runner's own FLEXI_* variables never leak into a child: only `env` decides. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('FLEXI_')) out[name] = value;
  return { ...out, ...env };
}

export function assertBuilt(): void {
  if (!existsSync(CLI_JS)) throw new Error(`${CLI_JS} is missing; run "npm run build" before these tests.`);
}

export function spawnProcess(command: string, args: string[], options: { cwd: string; env: Record<string, string> }): Spawned {
  const child = spawn(command, args, { cwd: options.cwd, env: childEnv(options.env), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout?.on('data', (chunk: Buffer) => void (out += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
    for (const listener of [...listeners]) listener();
  });
  const exited = new Promise<Exit>((done) => child.once('exit', (code, signal) => done({ code, signal })));
  let gone = false;
  void exited.then(() => {
    gone = true;
    for (const listener of [...listeners]) listener();
  });

  return {
    child,
    pid,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForStderr(pattern, timeoutMs) {
      return new Promise((resolveMatch, rejectMatch) => {
        const finish = (fn: () => void): void => {
          clearTimeout(timer);
          listeners.delete(check);
          fn();
        };
        const check = (): void => {
          const match = pattern.exec(err);
          if (match) finish(() => resolveMatch(match));
          else if (gone) finish(() => rejectMatch(new Error(`${command} exited before printing ${pattern}.\nstderr:\n${err}\nstdout:\n${out}`)));
        };
        const timer = setTimeout(
          () => finish(() => rejectMatch(new Error(`${command} did not print ${pattern} within ${timeoutMs} ms.\nstderr:\n${err}\nstdout:\n${out}`))),
          timeoutMs,
        );
        listeners.add(check);
        check();
      });
    },
    killGroup() {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    },
  };
}

/** `node dist/cli.js serve` on a free port of 127.0.0.1 with the given store and certificate folder. */
export function spawnServe(options: { db: string; certs: string; env?: Record<string, string> }): Spawned {
  assertBuilt();
  return spawnProcess(process.execPath, [CLI_JS, 'serve'], {
    cwd: REPO_ROOT,
    env: { FLEXI_PORT: '0', FLEXI_HOST: '127.0.0.1', FLEXI_DB: options.db, FLEXI_CERTS: options.certs, ...options.env },
  });
}

/** The port from "flexi-admin is listening on https://HOST:PORT", once the server says so. */
export async function listeningPort(server: Spawned, timeoutMs = 20_000): Promise<number> {
  const match = await server.waitForStderr(/is listening on https:\/\/[^\s]+:(\d+) /, timeoutMs);
  return Number(match[1]);
}
