import { exec } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { loadConfig } from '../../src/config';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { curlLine, shellWord } from '../../src/server/server';
import { dumpSqlite } from '../support/sqlite-dump';
import { entries, freshPkiDir, statuses, validateAnswer } from '../support/server';
import { portRefuses, REPO_ROOT, spawnProcess, spawnServe, type Spawned } from '../support/spawned';

const PKI_FILES = ['ca-key.pem', 'ca.pem', 'client-key.pem', 'client.pem', 'server-key.pem', 'server.pem'];
const TRY_LINE = /^try: (curl .*)$/m;

/** Runs a printed line exactly as an operator pasting it would: through sh, from the repository root. */
async function runLine(line: string): Promise<string> {
  const { stdout } = await promisify(exec)(line, { cwd: REPO_ROOT, shell: '/bin/sh', encoding: 'utf8', timeout: 20_000 });
  return stdout;
}


/** The SHA1 fingerprint of the certificate the server presents. */
function presentedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((done, fail) => {
    const socket = tlsConnect({ host: '127.0.0.1', servername: 'localhost', port, ca }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint;
      socket.destroy();
      done(fingerprint);
    });
    socket.once('error', fail);
  });
}

function expectSampleApplied(body: string): void {
  validateAnswer('PUT', '/admin/batch', { status: 200, headers: { 'content-type': 'application/xml' }, body });
  expect(statuses(body)).toEqual(['CREATED', 'CREATED', 'CREATED', 'CREATED', 'CREATED', 'CREATED', 'DELETED']);
  expect(entries(body).map((e) => e.id)).toEqual([
    'anna.mlada',
    'petr.novak',
    'moje_firma_s_r_o_',
    'demo_a_s_',
    'petr.novak@moje_firma_s_r_o_',
    'petr.novak@demo_a_s_',
    'demo_a_s_',
  ]);
}

describe('the defaults of npm start', () => {
  test('when nothing is configured, then it serves on 0.0.0.0:7000 with data/flexi-admin.db and certs/', () => {
    expect(loadConfig({ flags: {}, env: {} })).toMatchObject({
      port: 7000,
      host: '0.0.0.0',
      db: join(process.cwd(), 'data', 'flexi-admin.db'),
      certs: join(process.cwd(), 'certs'),
    });
  });

  test('when started from the repository root with the defaults, then the printed line is the documented one', () => {
    expect(process.cwd()).toBe(REPO_ROOT);
    expect(curlLine(loadConfig({ flags: {}, env: {} }), 7000)).toBe(
      'curl -T fixtures/scenario/01-full-sample-corrected.xml https://localhost:7000/admin/batch --cacert certs/ca.pem -E certs/client.pem --key certs/client-key.pem',
    );
  });

  test('when a path of the line holds spaces or quotes, then it is quoted for sh; an IPv6 host is bracketed', async () => {
    expect(shellWord("/tmp/it's my certs/ca.pem")).toBe(`'/tmp/it'\\''s my certs/ca.pem'`);
    const { stdout } = await promisify(exec)(`printf %s ${shellWord("/tmp/it's my certs/ca.pem")}`, { shell: '/bin/sh' });
    expect(stdout).toBe("/tmp/it's my certs/ca.pem");
    expect(curlLine({ ...loadConfig({ flags: {}, env: {} }), host: 'fd00::1' }, 7000)).toContain(" 'https://[fd00::1]:7000/admin/batch' ");
  });
});

describe('npm start on a fresh clone', () => {
  let dir: string;
  let certs: string;
  let db: string;
  let server: Spawned | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-start-'));
    // As in a fresh clone: the certificate folder holds nothing but its README.
    certs = join(dir, 'certs');
    mkdirSync(certs);
    cpSync(join(REPO_ROOT, 'certs', 'README.md'), join(certs, 'README.md'));
    db = join(dir, 'data', 'flexi-admin.db');
  });

  afterAll(() => {
    server?.killGroup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('when npm start runs, then it serves HTTPS, creates the dev PKI, registers the dev client, and its printed curl line applies the sample', async () => {
    server = spawnProcess('npm', ['start'], { cwd: REPO_ROOT, env: { FLEXI_PORT: '0', FLEXI_CERTS: certs, FLEXI_DB: db } });
    const [, line] = await server.waitForStderr(TRY_LINE, 90_000);

    expect(readdirSync(certs).sort()).toEqual(['README.md', ...PKI_FILES]);
    for (const key of ['ca-key.pem', 'client-key.pem', 'server-key.pem']) expect(statSync(join(certs, key)).mode & 0o777).toBe(0o600);

    const clientFingerprint = fingerprintOfCertificate(readFileSync(join(certs, 'client.pem'), 'utf8'));
    expect(dumpSqlite(db).fingerprints).toEqual([
      expect.objectContaining({ fingerprint: clientFingerprint, scope: 'root', label: 'dev client', revoked_at: null }),
    ]);

    expect(line).toMatch(/^curl -T fixtures\/scenario\/01-full-sample-corrected\.xml https:\/\/localhost:\d+\/admin\/batch /);
    expect(line).toContain(`--cacert ${join(certs, 'ca.pem')}`);
    const port = Number(/https:\/\/localhost:(\d+)\//.exec(line)?.[1]);
    expect(server.stderr()).toContain(`flexi-admin is listening on https://0.0.0.0:${port}`);

    expectSampleApplied(await runLine(line));
  }, 120_000);

  test('when npm start gets SIGTERM, then the server shuts down gracefully and npm exits 0', async () => {
    if (!server) throw new Error('the server of the previous test did not start');
    const port = Number(/https:\/\/localhost:(\d+)\//.exec(server.stderr())?.[1]);
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    // npm forwards SIGTERM to the shell of the start script; the server only hears it if that
    // shell exec'd it (`… && exec node dist/cli.js serve`), otherwise it is left running, orphaned.
    await new Promise((r) => setTimeout(r, 1000));
    expect({ exit, stopped: server.stdout().includes('"msg":"stopped"'), portClosed: await portRefuses(port) }).toEqual({
      exit: { code: 0, signal: null },
      stopped: true,
      portClosed: true,
    });
  });
});

describe('serve with an existing certificate folder', () => {
  let dir: string;

  beforeEach(() => {
    // A space in the path: the printed curl line must still work when pasted into a shell.
    dir = mkdtempSync(join(tmpdir(), 'flexi serve '));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function snapshot(certs: string): Map<string, { bytes: Buffer; mtimeMs: number }> {
    return new Map(readdirSync(certs).map((f) => [f, { bytes: readFileSync(join(certs, f)), mtimeMs: statSync(join(certs, f)).mtimeMs }]));
  }

  async function serveAndApply(certs: string): Promise<Spawned> {
    const server = spawnServe({ db: join(dir, 'flexi-admin.db'), certs });
    try {
      const [, line] = await server.waitForStderr(TRY_LINE, 30_000);
      expect(line).toContain(`--cacert '${join(certs, 'ca.pem')}'`);
      const port = Number(/https:\/\/localhost:(\d+)\//.exec(line)?.[1]);
      expect(await presentedFingerprint(port, readFileSync(join(certs, 'ca.pem'), 'utf8'))).toBe(
        fingerprintOfCertificate(readFileSync(join(certs, 'server.pem'), 'utf8')),
      );
      expectSampleApplied(await runLine(line));
      server.child.kill('SIGTERM');
      expect(await server.exited).toEqual({ code: 0, signal: null });
      return server;
    } finally {
      server.killGroup();
    }
  }

  test('when all six files exist, then serve uses them as they are and never rewrites one', async () => {
    const certs = join(dir, 'certs');
    cpSync(freshPkiDir(), certs, { recursive: true });
    const before = snapshot(certs);

    const server = await serveAndApply(certs);

    expect(server.stdout()).not.toContain('created development certificates');
    expect(snapshot(certs)).toEqual(before);
  });

  test('when only the CA exists, then serve issues the server and client pairs with it and leaves the CA byte-identical', async () => {
    const certs = join(dir, 'certs');
    mkdirSync(certs);
    const pki = freshPkiDir();
    for (const f of ['ca.pem', 'ca-key.pem']) cpSync(join(pki, f), join(certs, f));
    const before = snapshot(certs);

    await serveAndApply(certs);

    const after = snapshot(certs);
    expect([...after.keys()].sort()).toEqual(PKI_FILES);
    for (const f of ['ca.pem', 'ca-key.pem']) expect(after.get(f)).toEqual(before.get(f));
  });
});
