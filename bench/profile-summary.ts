import { readFileSync } from 'node:fs';

/**
 * Where a server spent its time, from a `node --cpu-prof` profile (`npm run bench -- --cpu-prof
 * DIR`): self time of every sample, grouped by the stage of the batch path its function belongs
 * to. Start-up (the dev PKI, loading modules) and idle time are left out of the percentages.
 *
 *   node dist-bench/bench/profile-summary.js DIR/CPU.*.cpuprofile
 */

interface CallFrame {
  functionName: string;
  url: string;
}

interface Profile {
  nodes: Array<{ id: number; callFrame: CallFrame }>;
  samples: number[];
  timeDeltas: number[];
}

const STARTUP = 'start-up (dev PKI, loading modules)';
const IDLE = 'idle';

/** The stage of one function, by its file. */
export function stageOf({ functionName: name, url }: CallFrame): string {
  if (/keygen|jsbn|node-forge|dev-pki|cjs\/loader|bootstrap\/realm|package_json_reader/.test(url) || name === 'generateKeyPairSync') return STARTUP;
  if (name === '(idle)') return IDLE;
  if (name === '(garbage collector)') return 'garbage collection';
  if (/src\/xml\/reader/.test(url) || name.startsWith('RegExp:')) return 'XML reading (xml/reader.ts)';
  if (/src\/batch\/parse/.test(url)) return 'operation reading (parse.ts)';
  if (/src\/batch\/plan|src\/domain\//.test(url)) return 'planning (plan.ts, domain)';
  if (/src\/xml\/|src\/server\/answer/.test(url)) return 'writing the answer (xml/, answer.ts)';
  if (/src\/batch\/execute/.test(url)) return 'executor';
  if (/better-sqlite3/.test(url) && name === 'exec') return 'SQLite BEGIN/COMMIT (the durable commit)';
  if (/src\/store\/|better-sqlite3|node_modules\/pg(-[a-z]+)?\//.test(url)) return 'store: snapshot, writes, journal (and the pg driver)';
  return 'HTTP, TLS, express and the rest';
}

export function summarize(profile: Profile): { busyMs: number; stages: Array<{ stage: string; ms: number; share: number }> } {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const micros = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const stage = stageOf(frames.get(id) as CallFrame);
    micros.set(stage, (micros.get(stage) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  micros.delete(STARTUP);
  micros.delete(IDLE);
  const busy = [...micros.values()].reduce((a, b) => a + b, 0);
  const stages = [...micros]
    .sort((a, b) => b[1] - a[1])
    .map(([stage, us]) => ({ stage, ms: Math.round(us / 1000), share: Math.round((1000 * us) / busy) / 10 }));
  return { busyMs: Math.round(busy / 1000), stages };
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist-bench/bench/profile-summary.js FILE.cpuprofile\n');
    process.exit(2);
  }
  const { busyMs, stages } = summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  process.stdout.write(`busy ${busyMs} ms (start-up and idle left out)\n`);
  for (const s of stages) process.stdout.write(`${String(s.ms).padStart(7)} ms ${s.share.toFixed(1).padStart(5)} %  ${s.stage}\n`);
}
