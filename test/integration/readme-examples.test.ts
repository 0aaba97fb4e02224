import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { entries, startTestServer, type TestServer } from '../support/server';
import { assertValidXml } from '../support/xmllint';

const REPO = resolve(__dirname, '..', '..');

/** The ```sh block right after `<!-- example:NAME -->` in README.md, exactly as written there. */
function readmeExample(name: string): string {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const m = new RegExp(`<!-- example:${name} -->\\n\`\`\`sh\\n([^]*?)\\n\`\`\`\\n`).exec(readme);
  if (!m) throw new Error(`README.md has no <!-- example:${name} --> sh block`);
  return `${m[1]}\n`;
}

/** Runs a script with `sh -e`, asynchronously: the server answering it runs in this very process. */
function runShell(script: string, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(cwd, 'example.sh');
  writeFileSync(file, script);
  return new Promise((done) => {
    execFile('sh', ['-e', file], { cwd, timeout: 30_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('the README walk-through of principals, impersonation and sessions', () => {
  let server: TestServer;
  let dir: string;

  beforeAll(async () => {
    server = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'flexi-readme-'));
    symlinkSync(server.config.certs, join(dir, 'certs'));
    symlinkSync(join(REPO, 'fixtures'), join(dir, 'fixtures'));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('when the <!-- example:principals --> block runs as written against the server, then every step answers as the README says', async () => {
    const example = readmeExample('principals');
    expect(example).toContain('localhost:7000');
    const { code, stdout, stderr } = await runShell(example.replaceAll('localhost:7000', `localhost:${server.port}`), dir);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });

    const results = stdout.match(/<\?xml[^>]*\?>\s*<flexibee-batch-result [^]*?<\/flexibee-batch-result>\n?/g) ?? [];
    expect(results).toHaveLength(3);
    for (const result of results) assertValidXml(result, 'batch-result');
    const [tenantAdmin, asTenantAdmin, withSession] = results.map((r) => entries(r).map((e) => [e.status, e.message]));
    expect(tenantAdmin).toEqual([
      ['CREATED', undefined],
      ['CREATED', undefined],
    ]);
    expect(asTenantAdmin).toEqual([
      ['CREATED', undefined],
      ['CREATED', undefined],
      ['FAILED', 'permission denied: deleteCompany required'],
    ]);
    expect(withSession).toEqual([['UPDATED', undefined]]);

    const rest = stdout.slice(stdout.lastIndexOf('</flexibee-batch-result>') + '</flexibee-batch-result>'.length).trim();
    const lastLine = rest.lastIndexOf('\n');
    const user = JSON.parse(rest.slice(0, lastLine)) as { winstrom: { user: Array<Record<string, unknown>> } };
    expect(user.winstrom.user).toEqual([
      expect.objectContaining({ username: 'jan.ucetni', email: 'jan@tereza.example', access: [{ company: 'tereza_s_r_o_', role: 'UCETNI' }] }),
    ]);
    expect(JSON.parse(rest.slice(lastLine + 1))).toEqual({ success: true });
  });
});
