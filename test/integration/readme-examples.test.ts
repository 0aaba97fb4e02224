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

describe('the README walk-throughs: principals, impersonation and sessions; a partner certificate scoped to its group', () => {
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

  test('when the <!-- example:tenants --> block runs as written against the server, then the partner\'s certificate is bound to its group and its batch and reads stay inside it', async () => {
    const example = readmeExample('tenants');
    expect(example).toContain('localhost:7000');
    expect(example).toContain('FLEXI_DB=data/flexi-admin.db npx flexi-admin fingerprint add');
    // The block talks to this test's server and its store; `npx flexi-admin` is this repository's bin/flexi-admin.js.
    const script = example
      .replaceAll('localhost:7000', `localhost:${server.port}`)
      .replaceAll('data/flexi-admin.db', `'${server.db}'`)
      .replaceAll('npx flexi-admin', `'${process.execPath}' '${join(REPO, 'bin', 'flexi-admin.js')}'`);
    const { code, stdout, stderr } = await runShell(script, dir);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });

    const results = stdout.match(/<\?xml[^>]*\?>\s*<flexibee-batch-result [^]*?<\/flexibee-batch-result>\n?/g) ?? [];
    expect(results).toHaveLength(2);
    for (const result of results) assertValidXml(result, 'batch-result');
    const [groups, partner] = results.map((r) => entries(r).map((e) => [e.type, e.id, e.status, e.message]));
    expect(groups).toEqual([
      ['LICENSE_GROUP', 'partner_a', 'CREATED', undefined],
      ['LICENSE_GROUP', 'partner_b', 'CREATED', undefined],
      ['USER', 'eva.b', 'CREATED', undefined],
    ]);
    expect(partner).toEqual([
      ['LICENSE_GROUP', 'pekaren_jana', 'CREATED', undefined],
      ['USER', 'jan.pekar', 'CREATED', undefined],
      ['COMPANY', 'pekaren_u_jana_s_r_o_', 'CREATED', undefined],
      ['USER', 'zuzana.uctovnicka', 'CREATED', undefined],
      ['ACCESS_LIST', 'zuzana.uctovnicka@pekaren_u_jana_s_r_o_', 'CREATED', undefined],
      ['USER', 'tretia.pekarka', 'FAILED', 'no free license in group pekaren_jana (2 of 2 used)'],
      ['USER', 'eva.b', 'FAILED', 'username eva.b is not available'],
    ]);

    const fingerprint = /^added ([0-9A-F:]{59}) \(scope partner_a, label "partner a"\)$/m.exec(stdout);
    expect(fingerprint).not.toBeNull();
    expect((await server.running.store.findActiveFingerprint((fingerprint as RegExpExecArray)[1]))?.scope).toBe('partner_a');

    const [group, users] = (stdout.match(/^\{\n[^]*?\n\}$/gm) ?? []).map((j) => JSON.parse(j) as { winstrom: Record<string, Array<Record<string, unknown>>> });
    expect(group.winstrom.group).toEqual([
      {
        id: 'pekaren_jana',
        name: 'Pekáreň u Jána',
        parent: 'partner_a',
        path: ['root', 'partner_a', 'pekaren_jana'],
        seats: 2,
        seatsUsed: 2,
        children: [],
        params: {},
        effectiveParams: {
          defaultRole: { value: 'UCETNI', from: 'partner_a' },
          passwordHash: { value: 'sha256', from: 'server' },
          country: { value: 'SK', from: 'partner_a' },
        },
      },
    ]);
    expect(users.winstrom.user.map((u) => [u.username, u.licenseGroup])).toEqual([
      ['jan.pekar', 'pekaren_jana'],
      ['zuzana.uctovnicka', 'pekaren_jana'],
    ]);
    const company = (await server.request('GET', '/c.json?group=pekaren_jana')).body;
    expect(JSON.parse(company)).toMatchObject({ winstrom: { company: [{ dbNazev: 'pekaren_u_jana_s_r_o_', country: 'SK', type: 'PODNIKATELIA+PU', licenseGroup: 'pekaren_jana' }] } });
    expect(JSON.parse((await server.request('GET', '/u/zuzana.uctovnicka.json')).body)).toMatchObject({
      winstrom: { user: [{ access: [{ company: 'pekaren_u_jana_s_r_o_', role: 'UCETNI' }] }] },
    });
  });
});
