import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';

/** A `flexi-admin serve` child process of the benchmark. */
export interface BenchServer {
  pid: number;
  port: number;
  /** VmRSS (now) and VmHWM (peak so far) of the server process, in bytes. */
  memory(): { rssBytes: number; peakRssBytes: number };
  /** SIGTERM, then waits for the graceful shutdown (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<void>;
}

export interface ServerOptions {
  cli: string;
  cwd: string;
  db: string;
  certs: string;
  /** Extra `serve` flags, such as --password-hash pbkdf2. */
  args?: string[];
  /** Extra node flags, such as --cpu-prof. */
  nodeArgs?: string[];
  startTimeoutMs?: number;
}

/** The bench decides every setting: FLEXI_* variables of the caller's shell never reach the server. */
function serverEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('FLEXI_')) env[name] = value;
  return { ...env, ...extra };
}

function statusField(pid: number, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(match[1]) * 1024;
}

/**
 * Starts `node CLI serve` on a free port of 127.0.0.1, logging warnings only (a JSON line per
 * request would be part of what phase D measures), and resolves once it prints its curl line.
 * The child stays in the benchmark's process group, so whoever kills that group kills it too.
 */
export async function startBenchServer(options: ServerOptions): Promise<BenchServer> {
  const args = [...(options.nodeArgs ?? []), options.cli, 'serve', '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...(options.args ?? [])];
  const child = spawn(process.execPath, args, {
    cwd: options.cwd,
    env: serverEnv({ FLEXI_DB: options.db, FLEXI_CERTS: options.certs }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${options.cli}`);
  const pid = child.pid;
  let stderr = '';
  let stdout = '';
  // Both pipes are drained: a server blocked on a full pipe would measure the benchmark, not itself.
  child.stdout.on('data', (chunk: Buffer) => void (stdout = (stdout + chunk.toString('utf8')).slice(-20_000)));
  const exited = new Promise<number | string>((done) => child.once('exit', (code, signal) => done(code ?? signal ?? 'unknown')));

  const port = await new Promise<number>((resolve, reject) => {
    const timeoutMs = options.startTimeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the server did not print its curl line within ${timeoutMs} ms.\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-20_000);
      const match = /try: curl .*https:\/\/[^\s/]+:(\d+)\/admin\/batch/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${how}) before it was ready.\nstderr:\n${stderr}\nstdout:\n${stdout}`));
    });
  });

  let stopping: Promise<void> | undefined;
  return {
    pid,
    port,
    memory: () => ({ rssBytes: statusField(pid, 'VmRSS'), peakRssBytes: statusField(pid, 'VmHWM') }),
    stop(timeoutMs = 60_000) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        const how = await exited;
        clearTimeout(timer);
        if (how !== 0) throw new Error(`the server stopped with ${how}.\nstderr:\n${stderr}`);
      })();
      return stopping;
    },
  };
}

/** The dev client of a certificate folder, over keep-alive connections (at most `sockets` at once). */
export function clientAgent(certs: string, sockets: number): Agent {
  return new Agent({
    keepAlive: true,
    maxSockets: sockets,
    ca: readFileSync(join(certs, 'ca.pem')),
    cert: readFileSync(join(certs, 'client.pem')),
    key: readFileSync(join(certs, 'client-key.pem')),
  });
}

export interface Answer {
  status: number;
  body: string;
  /** From the first byte sent to the last byte of the answer received. */
  ms: number;
  /** process.hrtime.bigint() when the request was sent. */
  sentAt: bigint;
}

export function send(agent: Agent, port: number, method: 'GET' | 'PUT', path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = request(
      { host: '127.0.0.1', servername: 'localhost', port, method, path, agent, headers: body === undefined ? {} : { 'content-type': 'application/xml' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: Number(process.hrtime.bigint() - started) / 1e6, sentAt: started }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export interface Stats {
  created: number;
  updated: number;
  deleted: number;
  skipped: number;
  failed: number;
}

/** The <stats> of a result document; throws on anything but a 200 with one. */
export function resultStats(answer: Answer): Stats {
  const match = /<stats created="(\d+)" updated="(\d+)" deleted="(\d+)" skipped="(\d+)" failed="(\d+)"\s*\/>/.exec(answer.body.slice(-500));
  if (answer.status !== 200 || !match) throw new Error(`the server answered ${answer.status}: ${answer.body.slice(0, 500)}`);
  const [created, updated, deleted, skipped, failed] = match.slice(1).map(Number);
  return { created, updated, deleted, skipped, failed };
}

/** Throws, quoting the first FAILED entry, unless every operation ended as `status`. */
export function expectAll(answer: Answer, status: keyof Stats, operations: number, phase: string): Stats {
  const stats = resultStats(answer);
  if (stats[status] !== operations) {
    const failed = /<entry [^>]*><status>FAILED<\/status><message>[^<]*<\/message><\/entry>/.exec(answer.body);
    throw new Error(`phase ${phase}: expected ${operations} ${status}, got ${JSON.stringify(stats)}${failed ? `; first failure: ${failed[0]}` : ''}`);
  }
  return stats;
}
