import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
    expect(Object.keys(results.phases).sort()).toEqual(['A', 'B', 'C', 'D', 'E', 'F', 'W']);
    for (const [phase, r] of Object.entries(results.phases)) {
      expect({ phase, positive: r.count > 0 && r.seconds > 0 && r.perSecond > 0 }).toEqual({ phase, positive: true });
    }
    expect(results.phases.A.count).toBe(100);
    expect(results.phases.C.count).toBe(1000);
    expect(results.phases.C.peakRssBytes).toEqual(expect.any(Number));
    expect(results.phases.C.peakRssBytes as number).toBeGreaterThan(0);
    expect(results.phases.D).toMatchObject({ p50Ms: expect.any(Number), p99Ms: expect.any(Number) });
    expect(results.phases.F.iterations).toBe(600_000);
    expect(results.ratios.AoverE).toBeGreaterThan(0);
  }, 180_000);
});
