import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join, resolve } from 'node:path';
import { connect } from 'node:net';

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
  /** The same on stdout, where the JSON log lines go. */
  waitForStdout(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
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
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
    for (const listener of [...listeners]) listener();
  });
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
    waitForStderr: (pattern, timeoutMs) => waitFor('stderr', pattern, timeoutMs),
    waitForStdout: (pattern, timeoutMs) => waitFor('stdout', pattern, timeoutMs),
    killGroup() {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    },
  };

  function waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((resolveMatch, rejectMatch) => {
      const finish = (fn: () => void): void => {
        clearTimeout(timer);
        listeners.delete(check);
        fn();
      };
      const check = (): void => {
        const match = pattern.exec(stream === 'stdout' ? out : err);
        if (match) finish(() => resolveMatch(match));
        else if (gone) finish(() => rejectMatch(new Error(`${command} exited before printing ${pattern} on ${stream}.\nstderr:\n${err}\nstdout:\n${out}`)));
      };
      const timer = setTimeout(
        () => finish(() => rejectMatch(new Error(`${command} did not print ${pattern} on ${stream} within ${timeoutMs} ms.\nstderr:\n${err}\nstdout:\n${out}`))),
        timeoutMs,
      );
      listeners.add(check);
      check();
    });
  }
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

/** What a client gets back: the answer, or the error of a cut connection (an Error of node's realm, not jest's: test with `'error' in`). */
export type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: string } | { error: Error };

export interface Sent {
  /** Resolves once the whole body is handed to the socket. */
  written: Promise<void>;
  /** Resolves once the status line and headers of the answer have arrived. */
  responded: Promise<void>;
  answer: Promise<Answer>;
  /** The request itself, for a test that sends its body piece by piece (`sendBatch` with `body: undefined`). */
  request: ClientRequest;
}

export interface SendOptions {
  /** The client reads nothing of the answer's body (it does not even take it off the socket) until this settles. */
  readAfter?: Promise<unknown>;
}

/**
 * PUT /admin/batch with the dev client of the certificate folder `certs`. With a body it is sent
 * at once; without, the caller writes it (`request.write`, `request.end`) at its own pace.
 */
export function sendBatch(port: number, certs: string, body: string | undefined, headers: Record<string, string> = {}, options: SendOptions = {}): Sent {
  let markWritten: () => void = () => undefined;
  const written = new Promise<void>((done) => (markWritten = done));
  let markResponded: () => void = () => undefined;
  const responded = new Promise<void>((done) => (markResponded = done));
  let request: ClientRequest | undefined;
  const answer = new Promise<Answer>((done) => {
    const failed = (error: Error): void => done({ error });
    request = httpsRequest(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        method: 'PUT',
        path: '/admin/batch',
        agent: false,
        ca: readFileSync(join(certs, 'ca.pem')),
        cert: readFileSync(join(certs, 'client.pem')),
        key: readFileSync(join(certs, 'client-key.pem')),
        headers: { 'content-type': 'application/xml', ...headers },
      },
      (res) => {
        markResponded();
        const chunks: Buffer[] = [];
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', failed);
        // Without a 'data' listener the answer stays paused: the socket fills and the server's buffer with it.
        const read = (): void => void res.on('data', (c: Buffer) => chunks.push(c));
        void (options.readAfter ?? Promise.resolve()).then(read, read);
      },
    );
    request.on('error', failed);
    request.on('finish', markWritten);
    if (body !== undefined) request.end(body);
  });
  if (!request) throw new Error('unreachable: the request is created synchronously');
  return { written, responded, answer, request };
}

/** The JSON log lines a spawned server printed on stdout, in order. */
export function logLines(server: Spawned): Array<Record<string, unknown>> {
  return server
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Whether nothing listens on the port any more (the connection is refused). */
export function portRefuses(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(false);
    });
    socket.once('error', () => done(true));
  });
}
