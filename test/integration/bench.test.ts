import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, spawnProcess, type Spawned } from '../support/spawned';

/**
 * A tiny run of `npm run bench` (issue #5), so that the benchmark never rots: it compiles, starts
 * the real servers, runs every phase and writes its results. No thresholds: figures on a shared
 * test machine mean nothing; only that each phase measured something.
 */
describe('npm run bench', () => {
  let dir: string;
  let bench: Spawned | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-bench-test-'));
  });

  afterAll(() => {
    bench?.killGroup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('measures every phase at a tiny scale and writes the results file', async () => {
    const out = join(dir, 'results.json');
    bench = spawnProcess('npm', ['run', 'bench', '--', '--scale', '0.01', '--duration', '1', '--out', out], { cwd: REPO_ROOT, env: {} });
    const timer = setTimeout(() => bench?.killGroup(), 170_000);
    const exit = await bench.exited;
    clearTimeout(timer);
    expect({ exit, stderr: exit.code === 0 ? '' : bench.stderr() }).toEqual({ exit: { code: 0, signal: null }, stderr: '' });
    expect(bench.stdout()).toMatch(/phase\s+what\s+count\s+seconds\s+per second/);

    const results = JSON.parse(readFileSync(out, 'utf8')) as {
      machine: { cpus: number; node: string };
      config: { scale: number; store: string };
      phases: Record<string, { count: number; seconds: number; perSecond: number; [extra: string]: unknown }>;
      ratios: { AoverE: number };
    };
    expect(results.config).toMatchObject({ scale: 0.01, store: 'sqlite' });
    expect(results.machine.cpus).toBeGreaterThan(0);
    expect(results.machine.node).toBe(process.version);
    expect(Object.keys(results.phases).sort()).toEqual(['A', 'B', 'C', 'D', 'E', 'F', 'G', 'W']);
    for (const [phase, r] of Object.entries(results.phases)) {
      expect({ phase, positive: r.count > 0 && r.seconds > 0 && r.perSecond > 0 }).toEqual({ phase, positive: true });
    }
    expect(results.phases.A.count).toBe(100);
    expect(results.phases.C.count).toBe(1000);
    expect(results.phases.C.peakRssBytes).toEqual(expect.any(Number));
    expect(results.phases.C.peakRssBytes as number).toBeGreaterThan(0);
    expect(results.phases.D).toMatchObject({ p50Ms: expect.any(Number), p99Ms: expect.any(Number) });
    expect(results.phases.F.iterations).toBe(600_000);
    expect(results.phases.G).toMatchObject({ count: 100, unit: 'events', deliveries: expect.any(Number) });
    expect(results.phases.G.deliveries as number).toBeGreaterThan(0);
    expect(results.ratios.AoverE).toBeGreaterThan(0);
  }, 180_000);
});

/**
 * `npm run bench:compare` at its smallest: HEAD (built in a temporary worktree) against the
 * working tree, one tiny run each. It shows the mechanics only (both builds compile and run in
 * turn, the out file holds every run and the medians, nothing is left behind); the figures mean
 * nothing here, and the tool judges no ratio.
 */
describe('npm run bench:compare', () => {
  let dir: string;
  let compare: Spawned | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-compare-test-'));
  });

  afterAll(() => {
    compare?.killGroup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('when HEAD is compared with the working tree, then base and head run in turn, every run and the medians are reported, and the worktree is removed', async () => {
    const out = join(dir, 'compare.json');
    const args = ['run', 'bench:compare', '--', '--base', 'HEAD', '--runs', '1', '--scale', '0.01', '--duration', '1', '--out', out];
    // TMPDIR: the worktree and the runs' folders go under `dir`, which afterAll removes whatever happens.
    compare = spawnProcess('npm', args, { cwd: REPO_ROOT, env: { TMPDIR: dir } });
    const timer = setTimeout(() => compare?.killGroup(), 170_000);
    const exit = await compare.exited;
    clearTimeout(timer);
    expect({ exit, stderr: exit.code === 0 ? '' : compare.stderr() }).toEqual({ exit: { code: 0, signal: null }, stderr: '' });
    expect(compare.stdout()).toMatch(/^A operations\/s \(higher is better\)$/m);
    expect(compare.stdout()).toMatch(/head \/ base of the medians: \d+\.\d{3}/);

    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      complete: boolean;
      builds: { side: string; ref: string | null; commit: string }[];
      config: { runs: number; phases: string[]; store: string; passthrough: string[] };
      loadAverageBefore: number[];
      loadAverageAfter: number[];
      runs: { sequence: number; build: string; figures: Record<string, Record<string, number>> }[];
      summary: { phase: string; metric: string; base: number[]; head: number[]; ratio: number | null }[];
    };
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    expect(report.complete).toBe(true);
    expect(report.builds.map((b) => [b.side, b.ref, b.commit])).toEqual([
      ['base', 'HEAD', head],
      ['head', null, head],
    ]);
    expect(report.config).toEqual({ runs: 1, phases: ['A', 'B', 'D'], store: 'sqlite', passthrough: ['--scale', '0.01', '--duration', '1'], baseArgs: [], headArgs: [], order: expect.any(String) });
    expect(report.loadAverageBefore).toHaveLength(3);
    expect(report.loadAverageAfter).toHaveLength(3);
    expect(report.runs.map((r) => [r.sequence, r.build])).toEqual([
      [1, 'base'],
      [2, 'head'],
    ]);
    for (const run of report.runs) {
      expect(Object.keys(run.figures)).toEqual(['A', 'B', 'D']);
      expect(run.figures.D).toEqual({ perSecond: expect.any(Number), p50Ms: expect.any(Number), p99Ms: expect.any(Number) });
    }
    expect(report.summary.map((s) => `${s.phase} ${s.metric}`)).toEqual(['A perSecond', 'B perSecond', 'D perSecond', 'D p50Ms', 'D p99Ms']);
    for (const s of report.summary) {
      expect({ s: `${s.phase} ${s.metric}`, runs: [s.base.length, s.head.length], ratio: s.ratio !== null && s.ratio > 0 }).toEqual({ s: `${s.phase} ${s.metric}`, runs: [1, 1], ratio: true });
    }

    const worktree = /git worktree add --detach (\S+)/.exec(compare.stderr())?.[1];
    expect(worktree).toEqual(expect.stringContaining(dir));
    expect(existsSync(worktree as string)).toBe(false);
    const worktrees = execFileSync('git', ['worktree', 'list', '--porcelain'], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(worktrees).not.toContain(worktree as string);
  }, 180_000);
});
