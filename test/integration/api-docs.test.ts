import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { entries, startTestServer, type TestServer } from '../support/server';
import { assertValidXml } from '../support/xmllint';

const REPO = resolve(__dirname, '..', '..');
const API_DOC = join(REPO, 'docs', 'api.md');

/** The fenced block right after `<!-- example:NAME -->` in docs/api.md, exactly as written there. */
function apiExample(name: string, language: string): string {
  const doc = readFileSync(API_DOC, 'utf8');
  const m = new RegExp(`<!-- example:${name} -->\\n\`\`\`${language}\\n([^]*?)\\n\`\`\`\\n`).exec(doc);
  if (!m) throw new Error(`docs/api.md has no <!-- example:${name} --> ${language} block`);
  return `${m[1]}\n`;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program asynchronously: the server answering it runs in this very process. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((done) => {
    execFile(command, args, { cwd, env, timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr: error && !stderr ? error.message : stderr });
    });
  });
}

/** What the batch of docs/api.md answers on an empty store: [type, id, status] of each entry. */
const FIRST_RUN = [
  ['USER', 'jana.novakova', 'CREATED'],
  ['COMPANY', 'novakova_s_r_o_', 'CREATED'],
  ['USER', 'petr.ucetni', 'CREATED'],
  ['ACCESS_LIST', 'petr.ucetni@novakova_s_r_o_', 'CREATED'],
];
const SECOND_RUN = FIRST_RUN.map(([type, id]) => [type, id, 'SKIPPED']);

function resultEntries(xml: string): string[][] {
  assertValidXml(xml, 'batch-result');
  return entries(xml).map((e) => [e.type, e.id, e.status]);
}

/**
 * A fresh server, and a working folder laid out as docs/api.md assumes: `batch.xml` from the doc,
 * `certs/` with the dev CA and client certificate. The example runs there with only its host and
 * port changed; it is sent twice, as a partner would re-send it.
 */
async function runTwice(fileName: string, example: string, command: (file: string) => [string, string[]], env?: NodeJS.ProcessEnv): Promise<[Run, Run]> {
  const server: TestServer = await startTestServer();
  const dir = mkdtempSync(join(tmpdir(), 'flexi-api-docs-'));
  try {
    symlinkSync(server.config.certs, join(dir, 'certs'));
    writeFileSync(join(dir, 'batch.xml'), apiExample('batch', 'xml'));
    expect(example).toContain('localhost:7000');
    writeFileSync(join(dir, fileName), example.replaceAll('localhost:7000', `localhost:${server.port}`));
    const [program, args] = command(join(dir, fileName));
    const first = await run(program, args, dir, env);
    const second = await run(program, args, dir, env);
    return [first, second];
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('docs/api.md: the client-certificate examples, run as written against a real server', () => {
  test('when the curl example sends the batch of the doc twice, then it gets 200 with the answer the doc shows, then 200 with every entry SKIPPED', async () => {
    const runs = await runTwice('example.sh', apiExample('curl', 'sh'), (file) => ['sh', ['-e', file]]);
    const [first, second] = runs.map(({ code, stdout, stderr }) => {
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const status = stdout.slice(stdout.lastIndexOf('</flexibee-batch-result>\n') + '</flexibee-batch-result>\n'.length);
      expect(status).toBe('200\n');
      return stdout.slice(0, stdout.length - status.length);
    });
    expect(resultEntries(first)).toEqual(FIRST_RUN);
    expect(first).toBe(apiExample('answer', 'xml'));
    expect(resultEntries(second)).toEqual(SECOND_RUN);
  });

  test('when the Python example (requests, verify= on the call) sends the batch twice with REQUESTS_CA_BUNDLE set, then it prints 200, each entry and the stats', async () => {
    const check = await run('python3', ['-c', 'import requests; print(requests.__version__)'], REPO);
    if (check.code !== 0) {
      throw new Error(
        `The Python example of docs/api.md needs python3 with the requests package (2.x): pip install requests, or apt-get install python3-requests. python3 said: ${check.stderr.trim()}`,
      );
    }
    expect(check.stdout).toMatch(/^2\./);
    // The variable a partner's machine often has: it must not displace the server's CA given as verify=.
    const env = { ...process.env, REQUESTS_CA_BUNDLE: '/etc/ssl/certs/ca-certificates.crt' };
    const runs = await runTwice('example.py', apiExample('python', 'python'), (file) => ['python3', [file]], env);
    const [first, second] = runs.map(({ code, stdout, stderr }) => {
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      return stdout.split('\n').map((line) => line.trimEnd());
    });
    expect(first).toEqual(['200', ...FIRST_RUN.map((e) => e.join(' ')), 'stats created=4 updated=0 deleted=0 skipped=0 failed=0', '']);
    expect(second).toEqual(['200', ...SECOND_RUN.map((e) => e.join(' ')), 'stats created=0 updated=0 deleted=0 skipped=4 failed=0', '']);
  });

  test('when the Node example (https with ca, cert and key) sends the batch twice, then it prints 200 and the result document each time', async () => {
    const runs = await runTwice('example.js', apiExample('node', 'js'), (file) => [process.execPath, [file]]);
    const [first, second] = runs.map(({ code, stdout, stderr }) => {
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout.startsWith('200\n')).toBe(true);
      return stdout.slice('200\n'.length).replace(/\n$/, '');
    });
    expect(resultEntries(first)).toEqual(FIRST_RUN);
    expect(resultEntries(second)).toEqual(SECOND_RUN);
  });
});
