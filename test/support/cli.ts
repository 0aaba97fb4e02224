import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const CLI = resolve(__dirname, '..', '..', 'dist', 'cli.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** FLEXI_* variables of the test runner are dropped; these are the only ones the child sees. */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

let scratch: string | undefined;
/** Commands run in an empty folder, so a forgotten setting never writes into the repository. */
function defaultCwd(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'flexi-cli-cwd-'));
  return scratch;
}

function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing; run "npm run build" before these tests.`);
}

function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('FLEXI_')) env[name] = value;
  return { ...env, ...extra };
}

/**
 * Runs `node dist/cli.js …` asynchronously: a synchronous child that talks to a server
 * running in this very process would deadlock it.
 */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  assertBuilt();
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: childEnv(options.env), cwd: options.cwd ?? defaultCwd(), timeout: options.timeoutMs ?? 30_000, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

export interface ServeProcess {
  child: ChildProcess;
  port: number;
  stdout: () => string;
  stderr: () => string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `flexi-admin serve` as a child and resolves once it says where it listens. */
export function startServe(args: string[], options: CliOptions = {}): Promise<ServeProcess> {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { env: childEnv(options.env), cwd: options.cwd ?? defaultCwd(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return new Promise((resolveStart, rejectStart) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rejectStart(new Error(`serve did not start in time; stderr: ${err}`));
    }, options.timeoutMs ?? 30_000);
    child.stdout.on('data', (chunk: Buffer) => void (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString('utf8');
      const m = /listening on https:\/\/\S+:(\d+) /.exec(err);
      if (m) {
        clearTimeout(timer);
        resolveStart({
          child,
          port: Number(m[1]),
          stdout: () => out,
          stderr: () => err,
          stop: () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      rejectStart(new Error(`serve exited with ${code} before listening; stderr: ${err}`));
    });
  });
}

/** The lines a command wrote, without the trailing empty one. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

export const fixture = (...parts: string[]): string => join(__dirname, '..', '..', ...parts);
