/**
 * `npm run bench` — the throughput benchmark of issue #5. It starts the real server (HTTPS,
 * mTLS, SQLite file in a temporary folder) as a child process and measures, in one run:
 *
 *   A  a 10 000-operation batch (4 000 users with pre-hashed passwords, 2 000 companies,
 *      4 000 access grants), end to end over HTTPS                          operations/s
 *   B  the same batch again (all SKIPPED)                                   operations/s
 *   C  a 100 000-operation batch                          operations/s, server peak RSS
 *   D  one-user batches from 8 concurrent keep-alive clients    batches/s, p50, p99 latency
 *   E  the rows of A written with raw better-sqlite3 prepared statements in one
 *      transaction, in this process                                   operations/s, A / E
 *   F  plain-text passwords hashed by a second server under pbkdf2             users/s
 *   G  10 000 events from batches delivered by webhook to an endpoint on 127.0.0.1 that
 *      answers at once: the time until all arrived, and how many deliveries carried them  events/s
 *
 * It prints a table and writes bench/results.json. `--scale 0.01 --duration 1` is the tiny
 * run that `npm test` does (test/integration/bench.test.ts), so that this never rots.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_PBKDF2_ITERATIONS } from '../src/domain/passwords';
import { ROOT_GROUP } from '../src/domain/principals';
import { isPostgresUrl } from '../src/store/open-store';
import { writePostgresBaseline } from './postgres-baseline';
import { writeBaseline } from './sqlite-baseline';
import { clientAgent, expectAll, resultStats, send, startBenchServer, type BenchServer } from './server';
import { startBenchReceiver } from './webhook-receiver';
import { countsAt, entityWorkload, eventUsersBatch, groupChain, groupChainBatch, oneUserBatch, plainPasswordBatch, subscriptionBatch } from './workload';

/** dist-bench/bench/run.js → the repository; the server is the dist-bench/src this run just compiled. */
const REPO_ROOT = resolve(__dirname, '..', '..');
const CLI_JS = resolve(__dirname, '..', 'src', 'cli.js');
const PHASES = ['A', 'B', 'C', 'D', 'E', 'F', 'G'] as const;
type Phase = (typeof PHASES)[number];
const CLIENTS = 8;

export interface BenchOptions {
  /** A postgres:// URL, passed to the servers as FLEXI_DB; without it, SQLite files in a temporary folder. */
  db?: string;
  scale: number;
  durationS: number;
  out: string;
  phases: Phase[];
  pbkdf2Iterations: number;
  /** Profile the main server (phases A–D) with node --cpu-prof into this folder. */
  cpuProf?: string;
  keep: boolean;
  /** 0: every object in `root`; N: in the deepest of a chain of N groups below `root` (issue 11's scope checks). */
  groupDepth: number;
  /** W to D with a webhook subscription of every event to an endpoint in this process (issue 12's outbox cost). */
  subscription: boolean;
}

export interface PhaseResult {
  what: string;
  /** operations (A, B, C, E), batches (D), users (F) or events (G) */
  unit: string;
  count: number;
  seconds: number;
  perSecond: number;
  [extra: string]: unknown;
}

export interface BenchResults {
  date: string;
  machine: Record<string, unknown>;
  config: Record<string, unknown>;
  /** W is the untimed-for-targets warm-up before A: the server's first batch, JIT compilation included. */
  phases: Partial<Record<Phase | 'W', PhaseResult>>;
  server: Record<string, number>;
  ratios: Record<string, number>;
}

const HELP = `usage: npm run bench -- [options]

  --scale N               size factor: A is 10 000 operations × N, C ten times A, F 64 × N users, G 10 000 × N events (default 1)
  --duration S            seconds of phase D (default 10)
  --out FILE              where the results go (default bench/results.json)
  --db URL                run the servers on this postgres:// store (default: SQLite files in a temporary folder)
  --phases A,B,…          run only these phases (default all: A,B,C,D,E,F,G)
  --pbkdf2-iterations N   iterations of phase F (default ${DEFAULT_PBKDF2_ITERATIONS}, the server's default)
  --cpu-prof DIR          run the main server (A–D) under node --cpu-prof, profiles into DIR
  --keep                  keep the temporary folder (stores, certificates) and say where it is
  --group-depth N         put the users and companies of W, A, B, C and D in a group N levels below
                          root (a chain bench_1 … bench_N, made before W); default 0, everything in root
  --subscription          run W, A, B, C and D with a webhook subscription of every event, delivered by the
                          server's task runner to an endpoint in this process that answers at once
`;

class UsageError extends Error {}

function positiveNumber(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, not '${text}'`);
  return n;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        db: { type: 'string' },
        scale: { type: 'string' },
        duration: { type: 'string' },
        out: { type: 'string' },
        phases: { type: 'string' },
        'pbkdf2-iterations': { type: 'string' },
        'cpu-prof': { type: 'string' },
        keep: { type: 'boolean' },
        'group-depth': { type: 'string' },
        subscription: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
  if (values.help) return 'help';
  if (values.db !== undefined && !isPostgresUrl(values.db)) throw new UsageError('--db takes a postgres:// URL; SQLite runs in a temporary folder by default');
  const phases = (values.phases ?? PHASES.join(',')).split(',').map((p) => p.trim().toUpperCase());
  for (const p of phases) if (!(PHASES as readonly string[]).includes(p)) throw new UsageError(`unknown phase '${p}'; expected some of ${PHASES.join(',')}`);
  const iterations = positiveNumber(values['pbkdf2-iterations'], 'pbkdf2-iterations', DEFAULT_PBKDF2_ITERATIONS);
  if (!Number.isInteger(iterations)) throw new UsageError('--pbkdf2-iterations must be a whole number');
  const groupDepth = Number(values['group-depth'] ?? 0);
  if (!Number.isInteger(groupDepth) || groupDepth < 0 || groupDepth > 64) throw new UsageError(`--group-depth must be a whole number from 0 to 64, not '${values['group-depth']}'`);
  return {
    db: values.db,
    scale: positiveNumber(values.scale, 'scale', 1),
    durationS: positiveNumber(values.duration, 'duration', 10),
    out: resolve(values.out ?? join(REPO_ROOT, 'bench', 'results.json')),
    phases: PHASES.filter((p) => phases.includes(p)),
    pbkdf2Iterations: iterations,
    cpuProf: values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']),
    keep: values.keep ?? false,
    groupDepth,
    subscription: values.subscription ?? false,
  };
}

const progress = (line: string): void => void process.stderr.write(`bench: ${line}\n`);
const seconds = (since: bigint): number => Number(process.hrtime.bigint() - since) / 1e9;
const round = (n: number, digits = 3): number => Number(n.toFixed(digits));
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function rate(what: string, unit: string, count: number, s: number, extra: Record<string, unknown> = {}): PhaseResult {
  return { what, unit, count, seconds: round(s), perSecond: round(count / s, 1), ...extra };
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function fileBytes(path: string): number {
  let total = 0;
  for (const suffix of ['', '-wal']) {
    try {
      total += statSync(path + suffix).size;
    } catch {
      // no WAL file (yet)
    }
  }
  return total;
}

export function formatTable(results: BenchResults): string {
  const rows: string[][] = [['phase', 'what', 'count', 'seconds', 'per second', 'extra']];
  for (const phase of ['W', ...PHASES] as const) {
    const r = results.phases[phase];
    if (!r) continue;
    const extra: string[] = [];
    if (typeof r.peakRssBytes === 'number') extra.push(`server peak RSS ${mib(r.peakRssBytes)}`);
    if (typeof r.p50Ms === 'number') extra.push(`p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, ${CLIENTS} clients`);
    if (typeof r.rows === 'number') extra.push(`${r.rows} rows`);
    if (typeof r.eventsDeliveredSeconds === 'number') extra.push(`its events at the webhook endpoint ${r.eventsDeliveredSeconds} s after it was sent`);
    if (typeof r.iterations === 'number') extra.push(`pbkdf2 ${r.iterations} iterations`);
    if (typeof r.deliveries === 'number') extra.push(`${r.deliveries} deliveries, ${r.batches} batches`);
    if (phase === 'E' && results.ratios.AoverE !== undefined) extra.push(`A / E = ${results.ratios.AoverE}`);
    rows.push([phase, r.what, `${r.count} ${r.unit}`, r.seconds.toFixed(3), r.perSecond.toFixed(1), extra.join('; ')]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row: string[]): string => row.map((cell, i) => (i >= 2 && i <= 4 ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const nonce = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  const tmp = mkdtempSync(join(tmpdir(), 'flexi-bench-'));
  const certs = join(tmp, 'certs');
  const storeOf = (name: string): string => options.db ?? join(tmp, `${name}.db`);
  const run = new Set(options.phases);
  const results: BenchResults = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryBytes: totalmem(),
      platform: `${platform()} ${release()} ${arch()}`,
      node: process.version,
      loadAverageAtStart: loadavg().map((l) => round(l, 2)),
    },
    config: {
      scale: options.scale,
      durationS: options.durationS,
      store: options.db ? 'postgres' : 'sqlite',
      baselineStore: options.db ? 'postgres' : 'sqlite',
      clients: CLIENTS,
      logLevel: 'warn',
      phases: options.phases,
      cpuProfile: options.cpuProf !== undefined,
      groupDepth: options.groupDepth,
      subscription: options.subscription,
    },
    phases: {},
    server: {},
    ratios: {},
  };
  const servers: BenchServer[] = [];
  const start = async (db: string, args: string[] = [], nodeArgs: string[] = []): Promise<BenchServer> => {
    const server = await startBenchServer({ cli: CLI_JS, cwd: REPO_ROOT, db, certs, args, nodeArgs });
    servers.push(server);
    return server;
  };

  const chain = groupChain(options.groupDepth);
  const group = chain.at(-1) ?? ROOT_GROUP;
  try {
    const a = entityWorkload(`a${nonce}`, countsAt(options.scale), group);
    if (run.has('A') || run.has('B') || run.has('C') || run.has('D')) {
      const nodeArgs = options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProf] : [];
      const receiver = options.subscription ? await startBenchReceiver() : undefined;
      const server = await start(storeOf('bench'), receiver ? ['--webhook-allow-hosts', '127.0.0.1'] : [], nodeArgs);
      const agent = clientAgent(certs, 1);
      /** Events committed since the subscription was made: what the endpoint should get. */
      let subscribed = 0;
      try {
        const warm = await send(agent, server.port, 'GET', '/status.json');
        if (warm.status !== 200) throw new Error(`GET /status.json answered ${warm.status}: ${warm.body}`);
        results.server.rssAtStartBytes = server.memory().rssBytes;
        if (chain.length > 0) {
          progress(`groups: ${chain.join(' > ')}`);
          const answer = await send(agent, server.port, 'PUT', '/admin/batch', groupChainBatch(`bench-${nonce}-groups`, chain));
          const stats = resultStats(answer);
          if (stats.created + stats.skipped !== chain.length) throw new Error(`the group chain was not made: ${answer.body.slice(0, 500)}`);
        }
        if (receiver) {
          const secret = `whsec_${randomBytes(24).toString('base64')}`;
          expectAll(await send(agent, server.port, 'PUT', '/admin/batch', subscriptionBatch(`bench-${nonce}-sub`, 'bench', receiver.url, secret)), 'created', 1, 'subscription');
          progress('subscription: every event goes to an endpoint in this process');
        }

        {
          // A server that has run for a while has its batch path compiled by V8; its very first
          // batch pays for that. One batch a tenth the size of A, with names of its own, is sent
          // first and shown as W, so A measures the path rather than the JIT's start.
          const w = entityWorkload(`w${nonce}`, countsAt(options.scale / 10), group);
          progress(`W: warm-up, one batch of ${w.operations} operations`);
          const answer = await send(agent, server.port, 'PUT', '/admin/batch', w.send(`bench-${nonce}-W`));
          const stats = expectAll(answer, 'created', w.operations, 'W');
          const again = await send(agent, server.port, 'PUT', '/admin/batch', w.send(`bench-${nonce}-W2`));
          expectAll(again, 'skipped', w.operations, 'W');
          results.phases.W = rate('warm-up: the first batch, cold', 'operations', w.operations, answer.ms / 1000, { stats });
          if (receiver) {
            // The subscription works before anything is measured: W's events have arrived.
            subscribed += w.events;
            await receiver.waitFor(subscribed, process.hrtime.bigint(), 120_000);
          }
          if (chain.length > 0) {
            // The point of --group-depth: the objects really are down there.
            const seen = await send(agent, server.port, 'GET', `/g/${group}.json`);
            const seatsUsed = seen.status === 200 ? (JSON.parse(seen.body) as { winstrom: { group: { seatsUsed?: number }[] } }).winstrom.group[0]?.seatsUsed : undefined;
            if (seatsUsed !== w.rows.users.length) throw new Error(`W: group ${group} should hold ${w.rows.users.length} users, GET /g/${group}.json answered ${seen.status}: ${seen.body.slice(0, 300)}`);
          }
        }
        if (run.has('A') || run.has('B')) {
          const body = a.send(`bench-${nonce}-A`);
          progress(`A: one batch of ${a.operations} operations (${mib(Buffer.byteLength(body))})`);
          const answer = await send(agent, server.port, 'PUT', '/admin/batch', body);
          const stats = expectAll(answer, 'created', a.operations, 'A');
          results.phases.A = rate('new entities, one batch', 'operations', a.operations, answer.ms / 1000, { bodyBytes: Buffer.byteLength(body), stats });
          if (receiver) {
            // How long after the batch was sent its events had all reached the endpoint (not part of A's figure).
            subscribed += a.events;
            const delivered = await receiver.waitFor(subscribed, answer.sentAt, 120_000);
            results.phases.A.eventsDeliveredSeconds = round(delivered.seconds);
          }
        }
        if (run.has('B')) {
          progress('B: the same batch again');
          const body = a.send(`bench-${nonce}-B`);
          const answer = await send(agent, server.port, 'PUT', '/admin/batch', body);
          const stats = expectAll(answer, 'skipped', a.operations, 'B');
          results.phases.B = rate('same batch again, all SKIPPED', 'operations', a.operations, answer.ms / 1000, { bodyBytes: Buffer.byteLength(body), stats });
        }
        if (run.has('C')) {
          results.server.peakRssBeforeCBytes = server.memory().peakRssBytes;
          const c = entityWorkload(`c${nonce}`, countsAt(options.scale, 10), group);
          const body = c.send(`bench-${nonce}-C`);
          progress(`C: one batch of ${c.operations} operations (${mib(Buffer.byteLength(body))})`);
          const answer = await send(agent, server.port, 'PUT', '/admin/batch', body);
          const stats = expectAll(answer, 'created', c.operations, 'C');
          const memory = server.memory();
          results.phases.C = rate('new entities, one large batch', 'operations', c.operations, answer.ms / 1000, {
            bodyBytes: Buffer.byteLength(body),
            answerBytes: Buffer.byteLength(answer.body),
            peakRssBytes: memory.peakRssBytes,
            rssAfterBytes: memory.rssBytes,
            stats,
          });
        }
        if (run.has('D')) {
          const clients = clientAgent(certs, CLIENTS);
          try {
            // The TLS handshakes of the eight connections happen here, not in the measurement.
            await Promise.all(Array.from({ length: CLIENTS }, () => send(clients, server.port, 'GET', '/status.json')));
            progress(`D: one-user batches from ${CLIENTS} keep-alive clients for ${options.durationS} s`);
            const latencies: number[] = [];
            let next = 0;
            const started = process.hrtime.bigint();
            const deadline = started + BigInt(Math.round(options.durationS * 1e9));
            await Promise.all(
              Array.from({ length: CLIENTS }, async () => {
                while (process.hrtime.bigint() < deadline) {
                  const n = next++;
                  const answer = await send(clients, server.port, 'PUT', '/admin/batch', oneUserBatch(`bench-${nonce}-D-${n}`, `d${nonce}.user${n}`, group));
                  expectAll(answer, 'created', 1, 'D');
                  latencies.push(answer.ms);
                }
              }),
            );
            const elapsed = seconds(started);
            latencies.sort((x, y) => x - y);
            results.phases.D = rate('one-user batches, concurrent', 'batches', latencies.length, elapsed, {
              clients: CLIENTS,
              p50Ms: round(percentile(latencies, 50), 1),
              p99Ms: round(percentile(latencies, 99), 1),
              maxMs: round(latencies[latencies.length - 1], 1),
            });
          } finally {
            clients.destroy();
          }
        }
        const memory = server.memory();
        results.server.peakRssBytes = memory.peakRssBytes;
        results.server.rssAtEndBytes = memory.rssBytes;
        if (!options.db) results.server.storeBytes = fileBytes(storeOf('bench'));
      } finally {
        agent.destroy();
        await server.stop();
        await receiver?.close();
      }
    }

    if (run.has('E')) {
      // The floor of the store the servers ran on: raw driver statements, one transaction.
      const driver = options.db ? 'pg' : 'better-sqlite3';
      progress(`E: the rows of A with raw ${driver} statements, in this process`);
      const ms = options.db ? await writePostgresBaseline(options.db, a.rows) : await writeBaseline(join(tmp, 'baseline.db'), a.rows);
      const rows = a.rows.users.length + a.rows.companies.length + a.rows.access.length;
      results.phases.E = rate(`raw ${driver}, rows of A`, 'operations', a.operations, ms / 1000, { rows });
      if (results.phases.A) results.ratios.AoverE = round(results.phases.A.perSecond / results.phases.E.perSecond, 4);
    }

    if (run.has('F')) {
      const users = Math.max(4, Math.round(64 * options.scale));
      const server = await start(storeOf('pbkdf2'), ['--password-hash', 'pbkdf2', '--pbkdf2-iterations', String(options.pbkdf2Iterations)]);
      const agent = clientAgent(certs, 1);
      try {
        const warm = await send(agent, server.port, 'GET', '/status.json');
        if (warm.status !== 200) throw new Error(`GET /status.json answered ${warm.status}: ${warm.body}`);
        progress(`F: ${users} plain-text passwords under pbkdf2 (${options.pbkdf2Iterations} iterations)`);
        const answer = await send(agent, server.port, 'PUT', '/admin/batch', plainPasswordBatch(`bench-${nonce}-F`, `f${nonce}`, users));
        expectAll(answer, 'created', users, 'F');
        results.phases.F = rate('plain-text passwords, pbkdf2', 'users', users, answer.ms / 1000, { iterations: options.pbkdf2Iterations });
      } finally {
        agent.destroy();
        await server.stop();
      }
    }
    if (run.has('G')) {
      // Events of batches, delivered by the server's own task runner to an endpoint that answers at
      // once: from the first batch sent to the last event received (issue 12: at most 20 s at scale 1).
      const events = Math.max(10, Math.round(10_000 * options.scale));
      const perBatch = 1000;
      const receiver = await startBenchReceiver();
      const server = await start(storeOf('webhooks'), ['--webhook-allow-hosts', '127.0.0.1']);
      const agent = clientAgent(certs, 1);
      try {
        const secret = `whsec_${randomBytes(24).toString('base64')}`;
        expectAll(await send(agent, server.port, 'PUT', '/admin/batch', subscriptionBatch(`bench-${nonce}-G`, 'bench', receiver.url, secret)), 'created', 1, 'G');
        progress(`G: ${events} events in batches of ${perBatch}, delivered by webhook`);
        const started = process.hrtime.bigint();
        let batches = 0;
        for (let from = 0; from < events; from += perBatch) {
          const count = Math.min(perBatch, events - from);
          expectAll(await send(agent, server.port, 'PUT', '/admin/batch', eventUsersBatch(`bench-${nonce}-G${batches}`, `g${nonce}`, from, count)), 'created', count, 'G');
          batches += 1;
        }
        const sent = seconds(started);
        const { seconds: s, deliveries } = await receiver.waitFor(events, started, 120_000);
        results.phases.G = rate('events delivered by webhook', 'events', events, s, { deliveries, batches, batchesSentSeconds: round(sent) });
      } finally {
        agent.destroy();
        await server.stop();
        await receiver.close();
      }
    }
    results.machine.loadAverageAtEnd = loadavg().map((l) => round(l, 2));
  } finally {
    await Promise.allSettled(servers.map((s) => s.stop()));
    if (options.keep) progress(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
  return results;
}

/** The command: resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseOptions(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`bench: ${e.message}\n${HELP}`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const results = await runBench(options);
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${formatTable(results)}\n\nresults in ${options.out}\n`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
