import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { devPkiPaths, issueCertificate } from '../../src/pki/dev-pki';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { lines, runCli, startServe, type CliResult } from '../support/cli';
import { assertValidXml } from '../support/xmllint';
import { entries, freshPkiDir, httpsCall, startTestServer, statuses, type TestServer } from '../support/server';
import { dropTestDb, newTestDb, queryRows, STORE_KIND } from '../support/stores';

const COMMANDS = ['serve', 'certs init', 'fingerprint add', 'fingerprint list', 'fingerprint revoke', 'batch apply', 'migrate'];
const FINGERPRINT = '61:0F:F2:7E:AC:4A:66:55:8A:7A:CB:2C:46:34:37:0A:FA:13:52:C7';
const OTHER_FINGERPRINT = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'flexi-cli-'));
});
/** Every store this file made, dropped at its end (the SQLite files go with the work folder). */
const made: string[] = [];
afterAll(() => {
  for (const db of made.splice(0)) dropTestDb(db);
  rmSync(work, { recursive: true, force: true });
});

let counter = 0;
/** A new store: a SQLite file in `dir` (this file's work folder by default), or a fresh PostgreSQL database. */
const newDb = (dir = work, name = `store-${++counter}.db`): string => {
  const db = newTestDb(dir, name);
  made.push(db);
  return db;
};
/** How the CLI names a store: a postgres:// URL without its user name and password. */
const shown = (db: string): string => db.replace(/\/\/[^@/]*@/, '//***@');

function writeFile(name: string, content: string): string {
  const file = join(work, name);
  writeFileSync(file, content);
  return file;
}

function expectUsageError(result: CliResult, reason: RegExp): void {
  expect(result.code).not.toBe(0);
  expect(result.stdout).toBe('');
  expect(lines(result.stderr)).toEqual([expect.stringMatching(/^flexi-admin: /)]);
  expect(result.stderr).toMatch(reason);
}

describe('flexi-admin --version', () => {
  test('when run with --version or -V, then it prints the version of package.json alone and exits 0, without reading the configuration', async () => {
    const version = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
    for (const flag of ['--version', '-V']) {
      expect(await runCli([flag], { env: { FLEXI_PORT: 'not-a-port' } })).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
  });
});

describe('flexi-admin --help', () => {
  test('when run with --help alone, then it exits 0 and lists every command of SPEC §1', async () => {
    const result = await runCli(['--help']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    for (const command of COMMANDS) expect(result.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  // Independent child processes: run side by side to keep the file fast.
  test.concurrent.each(COMMANDS)('when "%s --help" is run, then it exits 0 with its usage and the options every command shares', async (command) => {
    const result = await runCli([...command.split(' '), '--help']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(new RegExp(`^usage: flexi-admin ${command}\\b`));
    for (const variable of ['FLEXI_PORT', 'FLEXI_HOST', 'FLEXI_DB', 'FLEXI_CERTS', 'FLEXI_SERVER_AUTH', 'FLEXI_BODY_LIMIT', 'FLEXI_LOG_LEVEL', 'FLEXI_CONFIG']) {
      expect(result.stdout).toContain(`[${variable}]`);
    }
  });

  test('when -h is given instead of --help, then the same help is printed', async () => {
    const [short, long] = await Promise.all([runCli(['migrate', '-h']), runCli(['migrate', '--help'])]);
    expect(short).toEqual(long);
  });

  test('when a command group is asked for help, then its subcommands are listed', async () => {
    const result = await runCli(['fingerprint', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^usage: flexi-admin fingerprint <add\|list\|revoke>/);
    expect(result.stdout).not.toMatch(/^ {2}migrate/m);
  });

  test('when --help is given, then the configuration is not even read', async () => {
    const result = await runCli(['fingerprint', 'list', '--help'], { env: { FLEXI_PORT: 'not-a-port' } });
    expect(result.code).toBe(0);
  });
});

describe('wrong usage', () => {
  test.concurrent.each([
    ['no command is given', [], /no command given/],
    ['the command is unknown', ['frobnicate'], /unknown command 'frobnicate'/],
    ['a group is given without its subcommand', ['fingerprint'], /fingerprint needs one of the subcommands add, list, revoke/],
    ['the subcommand is unknown', ['fingerprint', 'delete', FINGERPRINT], /unknown command 'fingerprint delete/],
    ['an option is unknown', ['migrate', '--bogus'], /Unknown option '--bogus'/],
    ['the pool size is not a positive number', ['migrate', '--db-pool', '0'], /db-pool/],
    ['fingerprint add has no fingerprint', ['fingerprint', 'add'], /fingerprint add takes 1 argument/],
    ['fingerprint add has two', ['fingerprint', 'add', FINGERPRINT, OTHER_FINGERPRINT], /fingerprint add takes 1 argument/],
    ['the fingerprint is not one', ['fingerprint', 'add', 'not-a-fingerprint'], /Invalid fingerprint: expected a SHA1 fingerprint/],
    ['a SHA-256 fingerprint is given', ['fingerprint', 'add', `sha256 Fingerprint=${'AB:'.repeat(31)}AB`], /got a sha256 fingerprint/],
    ['serve gets an argument', ['serve', 'now'], /serve takes no arguments/],
    ['batch apply has no file', ['batch', 'apply'], /batch apply takes 1 argument/],
    ['the batch file does not exist', ['batch', 'apply', '/nonexistent/batch.xml'], /cannot read \/nonexistent\/batch\.xml: ENOENT/],
    ['--scope is given to another command', ['fingerprint', 'list', '--scope', 'root'], /--scope and --label belong to fingerprint add/],
    ['a flag value is invalid', ['migrate', '--port', 'seventy'], /port must be a whole number from 0 to 65535, not 'seventy'/],
    ['a flag has no value', ['migrate', '--db'], /--db/],
    ['the body limit is not a size', ['migrate', '--body-limit', 'lots'], /body limit must be a size/],
  ])('when %s, then it exits non-zero with a one-line reason', async (_label, args, reason) => {
    expectUsageError(await runCli(args, { env: { FLEXI_DB: newDb() } }), reason);
  });

  test('when an environment variable is invalid, then every command refuses it the same way', async () => {
    for (const args of [['migrate'], ['fingerprint', 'list'], ['serve']]) {
      expectUsageError(await runCli(args, { env: { FLEXI_LOG_LEVEL: 'chatty', FLEXI_DB: newDb() } }), /log level must be one of debug, info, warn, error, silent, not 'chatty'/);
    }
  });

  test('when fingerprint add names a license group that does not exist, then nothing is registered', async () => {
    const db = newDb();
    expectUsageError(await runCli(['fingerprint', 'add', FINGERPRINT, '--scope', 'partner_x'], { env: { FLEXI_DB: db } }), /license group 'partner_x' does not exist/);
    expect((await runCli(['fingerprint', 'list'], { env: { FLEXI_DB: db } })).stdout).toBe('');
  });
});

describe('fingerprint add, list and revoke', () => {
  test('when fingerprints are added in each accepted format, then list shows them canonical with scope, state and label', async () => {
    const env = { FLEXI_DB: newDb() };
    const plain = FINGERPRINT.replace(/:/g, '').toLowerCase();
    expect(await runCli(['fingerprint', 'add', plain, '--label', 'partner A'], { env })).toEqual({
      code: 0,
      stdout: `added ${FINGERPRINT} (scope root, label "partner A")\n`,
      stderr: '',
    });
    expect((await runCli(['fingerprint', 'add', `SHA1 Fingerprint=${OTHER_FINGERPRINT}`], { env })).code).toBe(0);
    expect((await runCli(['fingerprint', 'add', FINGERPRINT.toLowerCase(), '--label', 'partner A, rotated'], { env })).stdout).toMatch(/^updated /);

    const list = await runCli(['fingerprint', 'list'], { env });
    expect(list.code).toBe(0);
    expect(lines(list.stdout).sort()).toEqual([`${FINGERPRINT}\troot\tactive\tpartner A, rotated`, `${OTHER_FINGERPRINT}\troot\tactive\t`].sort());
  });

  test('when a fingerprint is revoked, then list shows it revoked and a second revoke fails', async () => {
    const env = { FLEXI_DB: newDb() };
    await runCli(['fingerprint', 'add', FINGERPRINT], { env });
    expect(await runCli(['fingerprint', 'revoke', `sha1 Fingerprint=${FINGERPRINT}`], { env })).toMatchObject({ code: 0, stdout: `revoked ${FINGERPRINT}\n` });
    expect((await runCli(['fingerprint', 'list'], { env })).stdout).toMatch(new RegExp(`^${FINGERPRINT}\troot\trevoked \\d{4}-\\d\\d-\\d\\dT`));
    expectUsageError(await runCli(['fingerprint', 'revoke', FINGERPRINT], { env }), /is not an active registered fingerprint/);
  });

  test('when an unknown fingerprint is revoked, then it exits non-zero and says so', async () => {
    expectUsageError(await runCli(['fingerprint', 'revoke', OTHER_FINGERPRINT], { env: { FLEXI_DB: newDb() } }), /is not an active registered fingerprint/);
  });

  test('when a revoked fingerprint is added again, then it is active again', async () => {
    const env = { FLEXI_DB: newDb() };
    await runCli(['fingerprint', 'add', FINGERPRINT], { env });
    await runCli(['fingerprint', 'revoke', FINGERPRINT], { env });
    expect((await runCli(['fingerprint', 'add', FINGERPRINT], { env })).stdout).toMatch(/^updated /);
    expect((await runCli(['fingerprint', 'list'], { env })).stdout).toContain(`${FINGERPRINT}\troot\tactive`);
  });

  test('when the store is given with --db instead of FLEXI_DB, then the same store is used', async () => {
    const db = newDb();
    await runCli(['fingerprint', 'add', FINGERPRINT, '--db', db]);
    expect((await runCli(['fingerprint', 'list'], { env: { FLEXI_DB: db } })).stdout).toContain(FINGERPRINT);
  });
});

describe('batch apply FILE', () => {
  const WITH_FAILURE = `<flexibee-batch id="cli-batch">
  <user><username>cli.user</username><password>a password of some length</password></user>
  <company><id>cli_firma</id><name>CLI Firma</name><country>CZ</country><adminUser>nobody.here</adminUser></company>
</flexibee-batch>`;

  test('when the batch has a FAILED entry, then it exits 0 and prints the result XML', async () => {
    const env = { FLEXI_DB: newDb() };
    const result = await runCli(['batch', 'apply', writeFile('with-failure.xml', WITH_FAILURE)], { env });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    assertValidXml(result.stdout, 'batch-result');
    expect(entries(result.stdout).map((e) => [e.id, e.status])).toEqual([
      ['cli.user', 'CREATED'],
      ['cli_firma', 'FAILED'],
    ]);
  });

  test('when the same file is applied again, then the store kept the first run and everything is SKIPPED or still FAILED', async () => {
    const env = { FLEXI_DB: newDb() };
    const file = writeFile('again.xml', WITH_FAILURE);
    await runCli(['batch', 'apply', file], { env });
    expect(statuses((await runCli(['batch', 'apply', file], { env })).stdout)).toEqual(['SKIPPED', 'FAILED']);
  });

  test.each([
    ['not well-formed', '<flexibee-batch id="x"><user>', /not a valid batch document/],
    ['without an id', '<flexibee-batch><user><username>a</username></user></flexibee-batch>', /id/],
    ['a DOCTYPE document', '<!DOCTYPE x [<!ENTITY a "b">]><flexibee-batch id="x"/>', /DOCTYPE/],
    ['a wrong root', '<batch id="x"/>', /flexibee-batch/],
  ])('when the document is %s, then it exits non-zero with one line, prints no result and applies nothing', async (name, body, reason) => {
    const env = { FLEXI_DB: newDb() };
    const file = writeFile(`rejected-${name.replace(/\W+/g, '-')}.xml`, body);
    const result = await runCli(['batch', 'apply', file], { env });
    expectUsageError(result, reason);
    expect(result.stderr).toContain(`${file} was rejected, nothing applied`);
  });

  test('when the batch is applied, then it is journalled for GET /admin/batch/{id} as the principal "cli"', async () => {
    const db = newDb();
    await runCli(['batch', 'apply', writeFile('journalled.xml', WITH_FAILURE)], { env: { FLEXI_DB: db } });
    const server = await startTestServer({ db });
    try {
      const journal = await server.running.store.findLatestJournal('root', 'cli-batch');
      expect(journal).toMatchObject({ principal: 'cli:cli', credential: 'cli:cli' });
      const res = await server.request('GET', '/admin/batch/cli-batch');
      expect(statuses(res.body)).toEqual(['CREATED', 'FAILED']);
    } finally {
      await server.close();
    }
  });
});

describe('migrate', () => {
  test('when run on a new store (SQLite: a path in folders that do not exist yet; PostgreSQL: an empty database), then it creates the store with its schema and says it is up to date, twice in a row', async () => {
    const db = newDb(join(work, 'nested', 'folder'), 'migrated.db');
    const first = await runCli(['migrate'], { env: { FLEXI_DB: db } });
    expect(first).toEqual({ code: 0, stdout: `store ${shown(db)} is up to date\n`, stderr: '' });
    if (STORE_KIND === 'sqlite') expect(existsSync(db)).toBe(true);
    // The schema is there (queryRows also refuses a SQLite file that does not exist).
    expect(queryRows(db, 'SELECT count(*) AS n FROM users')).toEqual([{ n: 0 }]);
    expect(await runCli(['migrate'], { env: { FLEXI_DB: db } })).toEqual(first);
  });
});

describe('certs init', () => {
  const FILES = ['ca-key.pem', 'ca.pem', 'client-key.pem', 'client.pem', 'server-key.pem', 'server.pem'];

  test('when run on an empty folder, then it creates exactly the six files, and a second run changes nothing', async () => {
    const certs = join(work, 'certs-init');
    const first = await runCli(['certs', 'init'], { env: { FLEXI_CERTS: certs } });
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^created /);
    expect(readdirSync(certs).sort()).toEqual(FILES);
    expect(statSync(join(certs, 'client-key.pem')).mode & 0o777).toBe(0o600);
    const before = FILES.map((f) => readFileSync(join(certs, f), 'utf8'));

    const second = await runCli(['certs', 'init', '--certs', certs]);
    expect(second).toMatchObject({ code: 0, stdout: `all certificates already exist in ${certs}\n` });
    expect(FILES.map((f) => readFileSync(join(certs, f), 'utf8'))).toEqual(before);
  });
});

describe('configuration: flags win over environment variables, which win over the config file', () => {
  const migrateDb = async (args: string[], env: Record<string, string>): Promise<string> => {
    const result = await runCli(['migrate', ...args], { env });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    return /^store (.*) is up to date$/.exec(result.stdout.trim())?.[1] ?? '';
  };

  test('when all three name a store, then the flag is used', async () => {
    const [fromFile, fromEnv, fromFlag] = [newDb(), newDb(), newDb()];
    const config = writeFile('all-three.json', JSON.stringify({ db: fromFile }));
    expect(await migrateDb(['--db', fromFlag, '--config', config], { FLEXI_DB: fromEnv })).toBe(shown(fromFlag));
  });

  test('when the environment and the config file name a store, then the environment is used', async () => {
    const [fromFile, fromEnv] = [newDb(), newDb()];
    const config = writeFile('env-and-file.json', JSON.stringify({ db: fromFile }));
    expect(await migrateDb(['--config', config], { FLEXI_DB: fromEnv })).toBe(shown(fromEnv));
  });

  test('when only the config file names a store, given by FLEXI_CONFIG, then it is used', async () => {
    const fromFile = newDb();
    const config = writeFile('file-only.json', JSON.stringify({ db: fromFile }));
    expect(await migrateDb([], { FLEXI_CONFIG: config })).toBe(shown(fromFile));
  });

  test('when the config file uses the flag names, then they are read too', async () => {
    const fromFile = newDb();
    const config = writeFile('flag-names.json', JSON.stringify({ db: fromFile, 'body-limit': '1MiB', 'log-level': 'warn', 'password-auth': false }));
    expect(await migrateDb(['--config', config], {})).toBe(shown(fromFile));
  });

  test('when the config file has a misspelt setting, then the command refuses it with one line naming it', async () => {
    const config = writeFile('misspelt.json', JSON.stringify({ prot: 7001 }));
    expectUsageError(await runCli(['migrate', '--config', config], { env: { FLEXI_DB: newDb() } }), /unknown setting 'prot'/);
  });

  test('when the config file is not JSON, then the command refuses it with one line naming the file', async () => {
    const config = writeFile('broken.json', '{ db: ');
    expectUsageError(await runCli(['migrate'], { env: { FLEXI_CONFIG: config, FLEXI_DB: newDb() } }), /Cannot read the config file .*broken\.json/);
  });

  test('when the config file holds an invalid value that the environment overrides, then the environment value is used', async () => {
    const fromEnv = newDb();
    const config = writeFile('overridden.json', JSON.stringify({ port: 'not-a-port' }));
    const result = await runCli(['migrate', '--config', config], { env: { FLEXI_PORT: '0', FLEXI_DB: fromEnv } });
    expect(result.code).toBe(0);
  });
});

describe('serve', () => {
  let blocker: NetServer;
  let busyPort: number;

  beforeAll(async () => {
    blocker = createNetServer();
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
    busyPort = (blocker.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((done) => blocker.close(done)));

  const serveEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
    FLEXI_HOST: '127.0.0.1',
    FLEXI_DB: newDb(),
    FLEXI_CERTS: freshPkiDir(),
    FLEXI_LOG_LEVEL: 'warn',
    ...extra,
  });

  test('when started with FLEXI_PORT=0, then it serves HTTPS with the dev client and exits 0 on SIGTERM', async () => {
    const env = serveEnv({ FLEXI_PORT: '0' });
    const serve = await startServe([], { env });
    try {
      const pki = devPkiPaths(env.FLEXI_CERTS);
      const ca = readFileSync(pki.ca, 'utf8');
      const devClient = { cert: readFileSync(pki.client, 'utf8'), key: readFileSync(pki.clientKey, 'utf8') };
      expect((await httpsCall(serve.port, ca, 'GET', '/status.json', {}, null)).status).toBe(200);
      expect((await httpsCall(serve.port, ca, 'GET', '/u.json', {}, devClient)).status).toBe(200);
      expect(serve.stderr()).toMatch(/try: curl -T .* https:\/\/localhost:\d+\/admin\/batch/);
    } finally {
      expect(await serve.stop()).toBe(0);
    }
  });

  test('when the environment names a busy port, then serve does not start and says so in one line', async () => {
    const result = await runCli(['serve'], { env: serveEnv({ FLEXI_PORT: String(busyPort) }) });
    expectUsageError(result, new RegExp(`Port ${busyPort} on 127.0.0.1 is already in use`));
  });

  test('when the environment names a busy port but --port 0 is given, then the flag wins and serve starts', async () => {
    const serve = await startServe(['--port', '0'], { env: serveEnv({ FLEXI_PORT: String(busyPort) }) });
    expect(serve.port).not.toBe(busyPort);
    expect(await serve.stop()).toBe(0);
  });

  test('when the config file names a busy port but FLEXI_PORT=0 is set, then the environment wins and serve starts', async () => {
    const config = writeFile('busy-port.json', JSON.stringify({ port: busyPort }));
    const serve = await startServe([], { env: serveEnv({ FLEXI_PORT: '0', FLEXI_CONFIG: config }) });
    expect(serve.port).not.toBe(busyPort);
    expect(await serve.stop()).toBe(0);
  });

  test('when a certificate is registered and revoked by the CLI while serve runs on the same store, then serve follows without a restart', async () => {
    const env = serveEnv({ FLEXI_PORT: '0' });
    const serve = await startServe([], { env });
    try {
      const ca = readFileSync(devPkiPaths(env.FLEXI_CERTS).ca, 'utf8');
      const partner = issueCertificate({ commonName: 'partner registered by the CLI', kind: 'client' });
      const asPartner = (): Promise<number> => httpsCall(serve.port, ca, 'GET', '/u.json', {}, { cert: partner.certPem, key: partner.keyPem }).then((r) => r.status);

      expect(await asPartner()).toBe(401);
      expect((await runCli(['fingerprint', 'add', fingerprintOfCertificate(partner.certPem)], { env: { FLEXI_DB: env.FLEXI_DB } })).code).toBe(0);
      expect(await asPartner()).toBe(200);
      expect((await runCli(['fingerprint', 'revoke', fingerprintOfCertificate(partner.certPem)], { env: { FLEXI_DB: env.FLEXI_DB } })).code).toBe(0);
      expect(await asPartner()).toBe(401);
    } finally {
      expect(await serve.stop()).toBe(0);
    }
  });
});

describe('the CLI and an in-process server on one store', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  test('when FLEXI_DB=… flexi-admin fingerprint add registers a certificate after the server started, then the server accepts it', async () => {
    const partner = issueCertificate({ commonName: 'late partner', kind: 'client' });
    const client = { cert: partner.certPem, key: partner.keyPem };
    expect((await server.request('GET', '/c.json', { client })).status).toBe(401);
    const added = await runCli(['fingerprint', 'add', fingerprintOfCertificate(partner.certPem), '--label', 'late partner'], { env: { FLEXI_DB: server.db } });
    expect(added.code).toBe(0);
    expect((await server.request('GET', '/c.json', { client })).status).toBe(200);
  });

  test('when fingerprint list runs against the store of a running server, then it shows the dev client the server registered', async () => {
    const list = await runCli(['fingerprint', 'list'], { env: { FLEXI_DB: server.db } });
    expect(list.stdout).toContain(`${fingerprintOfCertificate(readFileSync(server.pki.client, 'utf8'))}\troot\tactive\tdev client`);
  });

  test('when batch apply runs against the store of a running server, then the server lists the result at once', async () => {
    const file = writeFile('while-serving.xml', '<flexibee-batch id="from-the-cli"><user><username>cli.while.serving</username></user></flexibee-batch>');
    const applied = await runCli(['batch', 'apply', file], { env: { FLEXI_DB: server.db } });
    expect(statuses(applied.stdout)).toEqual(['CREATED']);
    expect((await server.request('GET', '/u/cli.while.serving.json')).status).toBe(200);
    expect((await server.request('GET', '/admin/batch/from-the-cli')).body).toBe(applied.stdout);
  });
});
