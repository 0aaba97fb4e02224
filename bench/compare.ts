/**
 * `npm run bench:compare -- --base REF` — is this build slower than that one? Single runs of
 * `npm run bench` vary by ±20 % on a shared machine, so one run of each build says nothing. This
 * builds both (the base in a temporary git worktree, compiled with that commit's own
 * tsconfig.bench.json), then runs the bench of each build alternately — base, head, base, head —
 * one run at a time, and compares the medians. It judges nothing: it prints every run, the
 * medians and head / base, and writes them with the commits and the machine's load to
 * bench/compare.json. Whether a ratio is good enough is for people to say.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';
import { withDefaultUser } from '../src/store/postgres/postgres-driver';
import { parseOptions as parseBenchOptions, type BenchResults } from './run';

/** dist-bench/bench/compare.js → the repository whose working tree is the default head. */
const REPO_ROOT = resolve(__dirname, '..', '..');
const RUN_JS = join('dist-bench', 'bench', 'run.js');
const OWN_OPTIONS = new Set(['base', 'head', 'runs', 'phases', 'db', 'out', 'keep', 'help', 'base-args', 'head-args']);
/** Options whose value is itself a list of bench options, so it may start with "--". */
const ARG_LISTS = new Set(['base-args', 'head-args']);
const FLAGS = new Set(['keep', 'help']);

export interface CompareOptions {
  base: string;
  /** undefined: the working tree as it is, uncommitted changes included. */
  head?: string;
  runs: number;
  phases: string[];
  db?: string;
  out: string;
  keep: boolean;
  /** Further bench options (--scale, --duration, …), given to every run as they are. */
  passthrough: string[];
  /** Bench options for the runs of one build only (e.g. --group-depth 3 for head: a new option the base does not know). */
  sideArgs: Record<Side, string[]>;
}

const HELP = `usage: npm run bench:compare -- --base REF [options] [bench options]

  --base REF        the build to compare against: a commit, branch or tag (required)
  --head REF        the build under test (default: this working tree, uncommitted changes included)
  --runs N          runs of each build, alternating base, head, base, head, … (default 5)
  --phases A,B,D    the bench phases to run and compare (default A,B,D)
  --db URL          a postgres:// server: each run gets a scratch database of its own on it,
                    dropped afterwards (default: SQLite files in a temporary folder)
  --out FILE        where every run and the summary go (default bench/compare.json)
  --keep            keep the temporary worktrees and say where they are
  --base-args "…"   bench options for the base's runs only, split on spaces
  --head-args "…"   bench options for the head's runs only: --head-args "--group-depth 3" with
                    --base HEAD compares every object three groups deep with the same build in root

Any other option (--scale N, --duration S, --pbkdf2-iterations N) goes to every run of
both builds as it is; see npm run bench -- --help. Nothing here judges the ratios: the
exit code is 0 whenever every run ran.
`;

class UsageError extends Error {}
class Interrupted extends Error {}

export function parseCompareOptions(argv: string[]): CompareOptions | 'help' {
  const own: Record<string, string | true> = {};
  const passthrough: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const match = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    const name = match?.[1];
    if (arg === '-h') own.help = true;
    else if (name === undefined || !OWN_OPTIONS.has(name)) passthrough.push(arg);
    else if (FLAGS.has(name)) {
      if (match?.[2] !== undefined) throw new UsageError(`--${name} takes no value`);
      own[name] = true;
    } else if (match?.[2] !== undefined) own[name] = match[2];
    else if (ARG_LISTS.has(name) && i + 1 < argv.length) own[name] = argv[++i];
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) own[name] = argv[++i];
    else throw new UsageError(`--${name} needs a value`);
  }
  if (own.help) return 'help';
  const text = (name: string): string | undefined => own[name] as string | undefined;
  const base = text('base');
  if (!base) throw new UsageError('--base REF is required: the commit, branch or tag to compare against');
  const runs = Number(text('runs') ?? 5);
  if (!Number.isInteger(runs) || runs < 1) throw new UsageError(`--runs must be a whole number of at least 1, not '${text('runs')}'`);
  const db = text('db');
  // The bench's own parser checks the phases, the store URL and the passthrough now, rather
  // than after both builds have compiled.
  let bench;
  try {
    bench = parseBenchOptions([...passthrough, '--phases', text('phases') ?? 'A,B,D', ...(db === undefined ? [] : ['--db', db])]);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (bench === 'help') return 'help';
  const sideArgs = { base: words(text('base-args')), head: words(text('head-args')) };
  for (const side of ['base', 'head'] as const) {
    try {
      parseBenchOptions([...passthrough, ...sideArgs[side]]);
    } catch (e) {
      throw new UsageError(`--${side}-args: ${(e as Error).message}`);
    }
  }
  return {
    base,
    head: text('head'),
    runs,
    phases: bench.phases,
    db,
    out: resolve(text('out') ?? join(REPO_ROOT, 'bench', 'compare.json')),
    keep: own.keep === true,
    passthrough,
    sideArgs,
  };
}

const words = (text: string | undefined): string[] => (text ?? '').split(/\s+/).filter((w) => w.length > 0);

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const roundTo = (n: number, digits: number): number => Number(n.toFixed(digits));

/** The figures of one phase that are compared, and which way is better. */
const METRICS: { key: string; label: string; better: 'higher' | 'lower'; only?: string }[] = [
  { key: 'perSecond', label: 'per second', better: 'higher' },
  { key: 'p50Ms', label: 'p50 ms', better: 'lower', only: 'D' },
  { key: 'p99Ms', label: 'p99 ms', better: 'lower', only: 'D' },
];

export type Side = 'base' | 'head';

export interface RunRecord {
  /** 1, 2, 3, … in the order the runs happened. */
  sequence: number;
  build: Side;
  /** The n-th run of this build. */
  round: number;
  startedAt: string;
  wallSeconds: number;
  loadAverageBefore: number[];
  /** phase → metric → value; a phase the build did not report is missing. */
  figures: Record<string, Record<string, number>>;
  /** The run's whole results file. */
  results: BenchResults;
}

export interface MetricSummary {
  phase: string;
  metric: string;
  unit: string;
  better: 'higher' | 'lower';
  base: number[];
  head: number[];
  baseMedian: number | null;
  headMedian: number | null;
  /** head median / base median. */
  ratio: number | null;
  /**
   * Medians of head_i / base_i (base ran just before) and head_i / base_i+1 (base ran just
   * after). Far apart, they show that the order or a drifting load moved the figures.
   */
  pairs: { baseFirst: number | null; headFirst: number | null };
}

function ratios(head: readonly (number | undefined)[], base: readonly (number | undefined)[], shift: number): number[] {
  const out: number[] = [];
  head.forEach((h, i) => {
    const b = base[i + shift];
    if (h !== undefined && b !== undefined && b > 0) out.push(h / b);
  });
  return out;
}

export function summarise(runs: readonly RunRecord[], phases: readonly string[]): MetricSummary[] {
  const out: MetricSummary[] = [];
  const of = (side: Side): RunRecord[] => runs.filter((r) => r.build === side).sort((a, b) => a.round - b.round);
  for (const phase of phases) {
    for (const metric of METRICS) {
      if (metric.only !== undefined && metric.only !== phase) continue;
      const column = (side: Side): (number | undefined)[] => of(side).map((r) => r.figures[phase]?.[metric.key]);
      const base = column('base');
      const head = column('head');
      const present = (values: (number | undefined)[]): number[] => values.filter((v): v is number => v !== undefined);
      if (present(base).length === 0 && present(head).length === 0) continue;
      const baseMedian = present(base).length ? roundTo(median(present(base)), 2) : null;
      const headMedian = present(head).length ? roundTo(median(present(head)), 2) : null;
      const pair = (values: number[]): number | null => (values.length ? roundTo(median(values), 4) : null);
      const unit = runs.map((r) => r.results.phases[phase as keyof BenchResults['phases']]?.unit).find((u) => u !== undefined) ?? 'operations';
      out.push({
        phase,
        metric: metric.key,
        unit: metric.key === 'perSecond' ? `${unit}/s` : 'ms',
        better: metric.better,
        base: present(base),
        head: present(head),
        baseMedian,
        headMedian,
        ratio: baseMedian && headMedian !== null ? roundTo(headMedian / baseMedian, 4) : null,
        pairs: { baseFirst: pair(ratios(head, base, 0)), headFirst: pair(ratios(head, base, 1)) },
      });
    }
  }
  return out;
}

export interface BuildInfo {
  side: Side;
  /** What was asked for; null for the working tree. */
  ref: string | null;
  commit: string;
  subject: string;
  committedAt: string;
  /** Changed or new files of the working tree that the bench build compiles (head without --head only). */
  uncommitted?: string[];
  /** tsc reported errors but still wrote the bench (an older commit under today's type packages). */
  compileErrors?: string;
}

function describeBuild(build: BuildInfo): string {
  const dirty = build.uncommitted?.length ? `, plus ${build.uncommitted.length} uncommitted file(s)` : '';
  const what = build.ref === null ? 'the working tree at ' : `${build.ref} = `;
  return `${build.side}  ${what}${build.commit.slice(0, 9)} ${build.committedAt.slice(0, 10)} ${build.subject}${dirty}`;
}

function fixed(n: number | null, digits: number): string {
  return n === null ? 'n/a' : n.toFixed(digits);
}

export function formatComparison(builds: readonly BuildInfo[], summary: readonly MetricSummary[], runs: number): string {
  const lines = builds.map(describeBuild);
  const cols = Array.from({ length: runs }, (_, i) => `run ${i + 1}`);
  for (const s of summary) {
    const digits = s.metric === 'perSecond' ? 1 : 2;
    const rows = [
      ['', ...cols, 'median', 'range'],
      ...(['base', 'head'] as const).map((side) => {
        const values = s[side];
        const m = s[`${side}Median`];
        const range = m && values.length > 1 ? `${pct(Math.min(...values) / m)} … ${pct(Math.max(...values) / m)}` : '';
        return [side, ...cols.map((_, i) => fixed(values[i] ?? null, digits)), fixed(m, digits), range];
      }),
    ];
    const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
    lines.push('', `${s.phase} ${s.metric === 'perSecond' ? s.unit : (METRICS.find((m) => m.key === s.metric)?.label ?? s.metric)} (${s.better} is better)`);
    for (const row of rows) lines.push(`  ${row.map((cell, i) => (i === 0 || i === row.length - 1 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')}`.trimEnd());
    lines.push(
      `  head / base of the medians: ${fixed(s.ratio, 3)}   (pairwise medians: ${fixed(s.pairs.baseFirst, 3)} with base run just before, ${fixed(s.pairs.headFirst, 3)} with base run just after)`,
    );
  }
  return lines.join('\n');
}

function pct(fraction: number): string {
  const p = Math.round((fraction - 1) * 100);
  return `${p >= 0 ? '+' : '−'}${Math.abs(p)} %`;
}

const round2 = (n: number): number => roundTo(n, 2);
const progress = (line: string): void => void process.stderr.write(`bench:compare: ${line}\n`);

/**
 * Every child (git, tsc, a bench run) runs in its own process group, one at a time; a signal
 * to this process ends the current one with its whole group (a bench run's servers included),
 * and the cleanup below then removes what was made.
 */
let current: ChildProcess | undefined;
let interrupted: NodeJS.Signals | undefined;

function onSignal(signal: NodeJS.Signals): void {
  interrupted ??= signal;
  if (current?.pid !== undefined) {
    try {
      process.kill(-current.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
}

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runChild(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<ChildResult> {
  if (interrupted) return Promise.reject(new Interrupted(`interrupted by ${interrupted}`));
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    current = child;
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => void (stdout = (stdout + c.toString('utf8')).slice(-200_000)));
    child.stderr?.on('data', (c: Buffer) => void (stderr = (stderr + c.toString('utf8')).slice(-200_000)));
    child.once('error', (e) => {
      current = undefined;
      fail(e);
    });
    child.once('close', (code, signal) => {
      current = undefined;
      if (interrupted) fail(new Interrupted(`interrupted by ${interrupted}`));
      else done({ code, signal, stdout, stderr });
    });
  });
}

function git(args: string[]): string {
  return execFileSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function commitOf(ref: string, option: string): string {
  try {
    return git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
  } catch {
    throw new UsageError(`${option} '${ref}' names no commit of ${REPO_ROOT}`);
  }
}

function commitInfo(side: Side, ref: string | null, commit: string): BuildInfo {
  const [subject, committedAt] = git(['log', '-1', '--format=%s%x00%cI', commit]).split('\0');
  return { side, ref, commit, subject, committedAt };
}

/** A built tree with dist-bench/bench/run.js. */
interface Build {
  info: BuildInfo;
  dir: string;
}

async function compile(build: Build, nodeModules: string): Promise<void> {
  const dir = build.dir;
  for (const needed of ['tsconfig.bench.json', join('bench', 'run.ts')]) {
    if (!existsSync(join(dir, needed))) throw new Error(`${build.info.commit} has no ${needed}, so its bench cannot be built and run this way`);
  }
  progress(`${build.info.side}: tsc -p tsconfig.bench.json in ${dir}`);
  const tsc = await runChild(process.execPath, [join(nodeModules, 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.bench.json'], { cwd: dir });
  if (!existsSync(join(dir, RUN_JS))) throw new Error(`tsc wrote no ${RUN_JS} in ${dir} (exit ${tsc.code}):\n${tsc.stdout}${tsc.stderr}`);
  if (tsc.code !== 0) {
    // Emitted code runs the same; type errors of an older commit under today's @types packages
    // should not keep it out of a comparison, but they are reported.
    build.info.compileErrors = `${tsc.stdout}${tsc.stderr}`.slice(0, 4000);
    progress(`${build.info.side}: tsc reported errors but wrote the bench; they are in the out file`);
  }
}

async function worktreeBuild(side: Side, ref: string, root: string, nodeModules: string, made: string[]): Promise<Build> {
  const commit = commitOf(ref, `--${side}`);
  const dir = join(root, `${side}-${commit.slice(0, 9)}`);
  made.push(dir);
  progress(`${side}: git worktree add --detach ${dir} ${commit.slice(0, 9)}`);
  const added = await runChild('git', ['-C', REPO_ROOT, 'worktree', 'add', '--detach', dir, commit], { cwd: REPO_ROOT });
  if (added.code !== 0) throw new Error(`git worktree add failed:\n${added.stderr}`);
  // An older commit's dependencies are a subset of today's (same majors), so it uses this tree's.
  symlinkSync(nodeModules, join(dir, 'node_modules'), 'dir');
  const build: Build = { info: commitInfo(side, ref, commit), dir };
  await compile(build, nodeModules);
  return build;
}

async function workingTreeBuild(nodeModules: string): Promise<Build> {
  const commit = commitOf('HEAD', 'HEAD');
  const info = commitInfo('head', null, commit);
  // Not git(): its trim would eat the status column of the first line.
  const changed = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src', 'bench', 'package.json', 'tsconfig.json', 'tsconfig.bench.json'], {
    encoding: 'utf8',
  });
  info.uncommitted = changed.split('\n').filter((l) => l.length > 3).map((l) => l.slice(3));
  const build: Build = { info, dir: REPO_ROOT };
  await compile(build, nodeModules);
  return build;
}

function removeWorktree(dir: string): void {
  try {
    unlinkSync(join(dir, 'node_modules'));
  } catch {
    // never linked
  }
  try {
    execFileSync('git', ['-C', REPO_ROOT, 'worktree', 'remove', '--force', dir], { stdio: 'ignore' });
  } catch {
    if (existsSync(dir)) {
      rmSync(dir, { recursive: true, force: true });
      progress(`git worktree remove failed for ${dir}; its folder is gone, and 'git worktree prune' forgets it`);
    }
  }
}

/** A postgres:// URL without its password, for the out file. */
function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://…';
  }
}

/**
 * Base and head may have different schemas, and every run should start from an empty store as
 * it does on SQLite, so each run gets a database of its own next to the one `url` names.
 */
async function withScratchDatabase<T>(url: string, use: (scratchUrl: string) => Promise<T>): Promise<T> {
  const scratch = `flexi_compare_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: withDefaultUser(url) });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${scratch}`);
    try {
      const target = new URL(withDefaultUser(url));
      target.pathname = `/${scratch}`;
      return await use(target.toString());
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
    }
  } finally {
    await admin.end();
  }
}

function figuresOf(results: BenchResults, phases: readonly string[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const phase of phases) {
    const r = results.phases[phase as keyof BenchResults['phases']];
    if (!r) continue;
    out[phase] = {};
    for (const m of METRICS) if (typeof r[m.key] === 'number') out[phase][m.key] = r[m.key] as number;
  }
  return out;
}

async function benchRun(build: Build, options: CompareOptions, runsDir: string, sequence: number, nth: number): Promise<RunRecord> {
  const dir = join(runsDir, String(sequence));
  mkdirSync(dir);
  const out = join(dir, 'results.json');
  const args = [join(build.dir, RUN_JS), '--phases', options.phases.join(','), '--out', out, ...options.passthrough, ...options.sideArgs[build.info.side]];
  const loadAverageBefore = loadavg().map(round2);
  const startedAt = new Date();
  const go = (db: string[]): Promise<ChildResult> =>
    // TMPDIR: the run's stores and certificates land in `dir`, so an interrupted run leaves nothing
    // behind. The caller's folder as cwd: relative paths among the passed options mean what they
    // would for npm run bench (the bench finds its own build from its own path).
    runChild(process.execPath, [...args, ...db], { cwd: process.cwd(), env: { ...process.env, TMPDIR: dir } });
  const child = options.db ? await withScratchDatabase(options.db, (url) => go(['--db', url])) : await go([]);
  const wallSeconds = round2((Date.now() - startedAt.getTime()) / 1000);
  if (child.code !== 0 || !existsSync(out)) {
    throw new Error(`run ${sequence} (${build.info.side}) ended with ${child.code ?? child.signal}:\n${child.stderr.slice(-4000)}`);
  }
  const results = JSON.parse(readFileSync(out, 'utf8')) as BenchResults;
  rmSync(dir, { recursive: true, force: true });
  return { sequence, build: build.info.side, round: nth, startedAt: startedAt.toISOString(), wallSeconds, loadAverageBefore, figures: figuresOf(results, options.phases), results };
}

function runLine(run: RunRecord, total: number): string {
  const parts = Object.entries(run.figures).map(([phase, f]) => {
    const latency = f.p50Ms === undefined ? '' : ` (p50 ${f.p50Ms} ms, p99 ${f.p99Ms} ms)`;
    return `${phase} ${f.perSecond}/s${latency}`;
  });
  return `run ${run.sequence}/${total} ${run.build}: ${parts.join(', ')}; ${run.wallSeconds} s, load ${run.loadAverageBefore.join(' ')}`;
}

export async function compare(options: CompareOptions): Promise<{ code: number; report: Record<string, unknown> }> {
  const nodeModules = realpathSync(join(REPO_ROOT, 'node_modules'));
  const root = mkdtempSync(join(tmpdir(), 'flexi-compare-'));
  const runsDir = join(root, 'runs');
  mkdirSync(runsDir);
  const worktrees: string[] = [];
  const builds: Build[] = [];
  const runs: RunRecord[] = [];
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    complete: false,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryBytes: totalmem(),
      platform: `${platform()} ${release()} ${arch()}`,
      node: process.version,
    },
    config: {
      runs: options.runs,
      order: 'alternating, base first: base, head, base, head, …',
      phases: options.phases,
      store: options.db ? withoutPassword(options.db) : 'sqlite',
      passthrough: options.passthrough,
      baseArgs: options.sideArgs.base,
      headArgs: options.sideArgs.head,
    },
    builds: [] as BuildInfo[],
    loadAverageBefore: loadavg().map(round2),
    runs,
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  let code = 0;
  try {
    builds.push(await worktreeBuild('base', options.base, root, nodeModules, worktrees));
    builds.push(options.head === undefined ? await workingTreeBuild(nodeModules) : await worktreeBuild('head', options.head, root, nodeModules, worktrees));
    const total = options.runs * 2;
    for (let nth = 1; nth <= options.runs; nth++) {
      for (const build of builds) {
        const run = await benchRun(build, options, runsDir, runs.length + 1, nth);
        runs.push(run);
        progress(runLine(run, total));
      }
    }
    report.complete = true;
  } catch (e) {
    code = e instanceof Interrupted ? (interrupted === 'SIGINT' ? 130 : 143) : e instanceof UsageError ? 2 : 1;
    report.error = e instanceof Error ? e.message : String(e);
    progress(String(report.error));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    report.loadAverageAfter = loadavg().map(round2);
    if (options.keep) progress(`kept ${root}; remove its worktrees with git worktree remove --force ${worktrees.join(' ')}`);
    else {
      for (const dir of worktrees) removeWorktree(dir);
      rmSync(root, { recursive: true, force: true });
    }
  }
  report.builds = builds.map((b) => b.info);
  report.summary = summarise(runs, options.phases);
  return { code, report };
}

/** The command: resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseCompareOptions(argv);
    if (options !== 'help') {
      commitOf(options.base, '--base');
      if (options.head !== undefined) commitOf(options.head, '--head');
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`bench:compare: ${e.message}\n${HELP}`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const { code, report } = await compare(options);
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
  const builds = report.builds as BuildInfo[];
  const summary = report.summary as MetricSummary[];
  if (report.complete === true) {
    const store = options.db ? 'PostgreSQL' : 'SQLite';
    const passed =
      (options.passthrough.length ? `, ${options.passthrough.join(' ')}` : '') +
      (['base', 'head'] as const).map((side) => (options.sideArgs[side].length ? `, ${side} only: ${options.sideArgs[side].join(' ')}` : '')).join('');
    process.stdout.write(
      `${formatComparison(builds, summary, options.runs)}\n\n` +
        `${options.runs} run(s) of each build on ${store}, alternating base first${passed}; load average ` +
        `${(report.loadAverageBefore as number[]).join(' ')} before, ${(report.loadAverageAfter as number[]).join(' ')} after.\n` +
        'Single runs vary by ±20 %: compare the medians only. head / base above 1 is faster for per-second figures, slower for latencies.\n',
    );
    // The comparison itself keeps one core busy; more than the machine's cores means other work ran too.
    const busiest = Math.max(...(report.runs as RunRecord[]).map((r) => r.loadAverageBefore[0]), (report.loadAverageAfter as number[])[0]);
    if (busiest > cpus().length) process.stdout.write(`The 1-minute load average reached ${busiest} on ${cpus().length} cores: other work ran meanwhile; rerun on an idle machine.\n`);
  }
  process.stdout.write(`${code === 0 ? 'comparison' : 'what ran'} in ${options.out}\n`);
  return code;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`bench:compare: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
