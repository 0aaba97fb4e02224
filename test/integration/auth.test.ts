import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULTS } from '../../src/config';
import { createLogger } from '../../src/log';
import { devPkiPaths, issueCertificate, type IssuedCertificate } from '../../src/pki/dev-pki';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { startServer } from '../../src/server/server';
import { lines, runCli } from '../support/cli';
import { freshPkiDir, startTestServer, type Response, type TestServer } from '../support/server';
import { dropTestDb, newTestDb } from '../support/stores';

const run = promisify(execFile);
const DAY = 24 * 60 * 60 * 1000;
const REFUSED = 'Authentication failed: present a registered client certificate, valid server credentials or a live session.';
const SERVER_USER = 'flexi-server-admin';
const SERVER_PASSWORD = 'a-very-secret-and-very-long-password';

const client = (c: IssuedCertificate): { cert: string; key: string } => ({ cert: c.certPem, key: c.keyPem });
const basic = (user: string, password: string): Record<string, string> => ({
  Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

function serverAuthXml(password: string, doctype = '<!DOCTYPE properties SYSTEM "http://java.sun.com/dtd/properties.dtd">', user = SERVER_USER): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
${doctype}
<properties>
<comment>server configuration</comment>
<entry key="username">${user}</entry>
<entry key="password">${password}</entry>
</properties>
`;
}

function expectRefused(res: Response): void {
  expect(res.status).toBe(401);
  expect(res.body).toContain(`<message>${REFUSED}</message>`);
  expect(res.headers['www-authenticate']).toBe('Basic realm="flexi-admin"');
}

/** A plain HTTP server that counts what it is asked, standing in for java.sun.com. */
async function startDtdTrap(): Promise<{ server: HttpServer; url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createHttpServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.end('<!ELEMENT properties (comment?, entry*)>');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

describe('client certificate authentication over real TLS', () => {
  let server: TestServer;
  let partner: IssuedCertificate;
  let stranger: IssuedCertificate;
  let revoked: IssuedCertificate;
  let expired: IssuedCertificate;
  let notYetValid: IssuedCertificate;
  let laterRevoked: IssuedCertificate;

  beforeAll(async () => {
    server = await startTestServer();
    const now = Date.now();
    partner = issueCertificate({ commonName: 'partner portal', kind: 'client' });
    stranger = issueCertificate({ commonName: 'stranger', kind: 'client' });
    revoked = issueCertificate({ commonName: 'revoked partner', kind: 'client' });
    laterRevoked = issueCertificate({ commonName: 'partner revoked while the server runs', kind: 'client' });
    expired = issueCertificate({ commonName: 'expired partner', kind: 'client', notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) });
    notYetValid = issueCertificate({ commonName: 'future partner', kind: 'client', notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) });
    const store = server.running.store;
    for (const c of [partner, revoked, expired, notYetValid, laterRevoked]) {
      await store.addFingerprint({ fingerprint: fingerprintOfCertificate(c.certPem), scope: 'root', label: null });
    }
    await store.revokeFingerprint(fingerprintOfCertificate(revoked.certPem));
  });
  afterAll(() => server.close());

  test('when the dev client presents its certificate, then the request is answered 200', async () => {
    const res = await server.request('GET', '/u.json');
    expect(res.status).toBe(200);
  });

  test('when a registered self-signed partner certificate is presented, then the request is answered 200', async () => {
    const res = await server.request('GET', '/c.json', { client: client(partner) });
    expect(res.status).toBe(200);
  });

  test('when no certificate and no credentials are sent, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: null }));
  });

  test('when an unregistered certificate is presented, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: client(stranger) }));
  });

  test('when a revoked certificate is presented, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: client(revoked) }));
  });

  test('when a registered certificate has expired, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: client(expired) }));
  });

  test('when a registered certificate is not valid yet, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: client(notYetValid) }));
  });

  test('when a certificate is revoked while the server runs, then its next request is 401', async () => {
    expect((await server.request('GET', '/u.json', { client: client(laterRevoked) })).status).toBe(200);
    await server.running.store.revokeFingerprint(fingerprintOfCertificate(laterRevoked.certPem));
    expectRefused(await server.request('GET', '/u.xml', { client: client(laterRevoked) }));
  });

  test('when authentication fails for different reasons, then every answer is byte for byte the same', async () => {
    const bodies = new Set<string>();
    for (const c of [null, client(stranger), client(revoked), client(expired), client(notYetValid)]) {
      bodies.add((await server.request('GET', '/u.xml', { client: c })).body);
    }
    expect(bodies.size).toBe(1);
  });

  test('when an unauthenticated client sends a batch, then it is refused and nothing is applied', async () => {
    const batch = '<flexibee-batch id="sneaky"><user><username>intruder</username></user></flexibee-batch>';
    expectRefused(await server.batch(batch, { client: client(stranger) }));
    expect(await server.running.store.findUser('root', 'intruder')).toBeUndefined();
    expect(await server.running.store.findLatestJournal('root', 'sneaky')).toBeUndefined();
  });

  test('when a path answers in JSON, then the 401 is a JSON envelope with the same message', async () => {
    const res = await server.request('GET', '/u.json', { client: null });
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(res.body)).toEqual({ winstrom: { '@version': '1.0', success: false, message: REFUSED } });
  });

  test('when a request presents server credentials to a server without a server-auth file, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: null, headers: basic(SERVER_USER, SERVER_PASSWORD) }));
  });

  test('when a certificate made with the openssl command line is registered with "flexi-admin fingerprint add", then it is accepted without a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flexi-openssl-'));
    try {
      const [keyFile, certFile] = [join(dir, 'k.pem'), join(dir, 'c.pem')];
      await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=partner', '-days', '2']);
      const opensslClient = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
      expectRefused(await server.request('GET', '/u.xml', { client: opensslClient }));

      const { stdout: line } = await run('openssl', ['x509', '-noout', '-fingerprint', '-sha1', '-in', certFile], { encoding: 'utf8' });
      expect(line).toMatch(/^sha1 Fingerprint=/i);
      const added = await runCli(['fingerprint', 'add', line.trim(), '--label', 'openssl partner'], { env: { FLEXI_DB: server.db } });
      expect(added).toMatchObject({ code: 0, stderr: '' });

      const res = await server.request('GET', '/u.json', { client: opensslClient });
      expect(res.status).toBe(200);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('client certificates with --client-ca', () => {
  let server: TestServer;
  let selfSigned: IssuedCertificate;

  beforeAll(async () => {
    const certs = freshPkiDir();
    server = await startTestServer({ certs, clientCa: devPkiPaths(certs).ca });
    selfSigned = issueCertificate({ commonName: 'registered but not signed by the CA', kind: 'client' });
    await server.running.store.addFingerprint({ fingerprint: fingerprintOfCertificate(selfSigned.certPem), scope: 'root', label: null });
  });
  afterAll(() => server.close());

  test('when a registered certificate does not chain to the client CA, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: client(selfSigned) }));
  });

  test('when a registered certificate chains to the client CA, then the answer is 200', async () => {
    expect((await server.request('GET', '/u.json')).status).toBe(200);
  });
});

describe('server name and password (HTTP Basic)', () => {
  let server: TestServer;
  let trap: Awaited<ReturnType<typeof startDtdTrap>>;
  let authDir: string;

  beforeAll(async () => {
    trap = await startDtdTrap();
    authDir = mkdtempSync(join(tmpdir(), 'flexi-server-auth-'));
    const file = join(authDir, 'server-auth.xml');
    writeFileSync(file, serverAuthXml(SERVER_PASSWORD, `<!DOCTYPE properties SYSTEM "${trap.url}/properties.dtd">`));
    server = await startTestServer({ serverAuth: file });
  });
  afterAll(async () => {
    await server.close();
    await new Promise((done) => trap.server.close(done));
    rmSync(authDir, { recursive: true, force: true });
  });

  test('when the right name and password are sent without a certificate, then the answer is 200', async () => {
    const res = await server.request('GET', '/u.json', { client: null, headers: basic(SERVER_USER, SERVER_PASSWORD) });
    expect(res.status).toBe(200);
  });

  test('when the right name and password send a batch, then it is applied', async () => {
    const res = await server.request('PUT', '/admin/batch', {
      client: null,
      headers: basic(SERVER_USER, SERVER_PASSWORD),
      body: '<flexibee-batch id="by-password"><user><username>jana.basic</username></user></flexibee-batch>',
    });
    expect(res.status).toBe(200);
    expect(res.body).toContain('<status>CREATED</status>');
  });

  test('when the password is wrong, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: null, headers: basic(SERVER_USER, `${SERVER_PASSWORD}x`) }));
  });

  test('when the name is wrong, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: null, headers: basic('someone-else', SERVER_PASSWORD) }));
  });

  test('when the password is empty, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: null, headers: basic(SERVER_USER, '') }));
  });

  test('when the Authorization header is not Basic, then the answer is 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { client: null, headers: { Authorization: `Bearer ${SERVER_PASSWORD}` } }));
  });

  test('when wrong credentials come with a registered certificate, then the answer is still 401', async () => {
    expectRefused(await server.request('GET', '/u.xml', { headers: basic(SERVER_USER, 'not-the-password-at-all') }));
  });

  test('when a wrong name and a wrong password are sent, then the answer equals the one for a wrong password only', async () => {
    const wrongPassword = await server.request('GET', '/u.xml', { client: null, headers: basic(SERVER_USER, 'wrong-password-wrong') });
    const wrongBoth = await server.request('GET', '/u.xml', { client: null, headers: basic('nobody', 'wrong-password-wrong') });
    expect(wrongBoth.body).toBe(wrongPassword.body);
  });

  test('when server credentials are accepted and refused, then no log line holds a password or the Authorization header', async () => {
    await server.request('GET', '/u.json', { client: null, headers: basic(SERVER_USER, SERVER_PASSWORD) });
    await server.request('GET', '/u.json', { client: null, headers: basic(SERVER_USER, 'not-the-password-at-all') });
    await server.request('GET', '/u.json', { client: null, headers: basic('nobody', 'wrong-password-wrong') });
    const log = server.logs.join('');
    expect(log).toContain('authentication refused');
    for (const secret of [SERVER_PASSWORD, 'not-the-password-at-all', 'wrong-password-wrong', basic(SERVER_USER, SERVER_PASSWORD).Authorization.slice(6), 'Basic ']) {
      expect(log).not.toContain(secret);
    }
  });

  test('when the server-auth file names a DTD, then the DTD is never fetched', () => {
    expect(trap.requests).toEqual([]);
  });
});

describe('reading the server-auth file at start', () => {
  let dir: string;
  let trap: Awaited<ReturnType<typeof startDtdTrap>>;
  /** The stores the servers of this block were given, dropped at its end. */
  const stores: string[] = [];
  const newDb = (name: string): string => {
    const db = newTestDb(dir, `${name}.db`);
    stores.push(db);
    return db;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-server-auth-start-'));
    trap = await startDtdTrap();
  });
  afterAll(async () => {
    await new Promise((done) => trap.server.close(done));
    for (const db of stores.splice(0)) dropTestDb(db);
    rmSync(dir, { recursive: true, force: true });
  });

  async function startWith(content: string, name: string) {
    const file = join(dir, `${name}.xml`);
    writeFileSync(file, content);
    const config = { ...DEFAULTS, host: '127.0.0.1', port: 0, db: newDb(name), certs: freshPkiDir(), serverAuth: file, logLevel: 'silent' as const };
    return startServer(config, createLogger('silent'));
  }

  test('when "flexi-admin serve" gets a server-auth password of 14 characters, then it does not start and says why', async () => {
    const file = join(dir, 'short.xml');
    writeFileSync(file, serverAuthXml('fourteen-chars', `<!DOCTYPE properties SYSTEM "${trap.url}/short.dtd">`));
    const result = await runCli(['serve'], {
      env: { FLEXI_SERVER_AUTH: file, FLEXI_PORT: '0', FLEXI_HOST: '127.0.0.1', FLEXI_DB: newDb('short'), FLEXI_CERTS: freshPkiDir() },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).not.toMatch(/listening/);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^flexi-admin: .*server-auth password .*shorter than 15 characters/)]);
    expect(trap.requests).toEqual([]);
  });

  test('when the server-auth password has exactly 15 characters, then the server starts', async () => {
    const running = await startWith(serverAuthXml('fifteen-chars-x'), 'fifteen');
    await running.close();
  });

  test('when the password of 15 characters is made of multi-byte characters, then it is counted in characters', async () => {
    const running = await startWith(serverAuthXml('žluťoučký-kůň-ú'), 'multibyte');
    await running.close();
  });

  test('when the server-auth password is shorter than 15 characters, then startServer refuses with the reason', async () => {
    await expect(startWith(serverAuthXml('short'), 'short-in-process')).rejects.toThrow(/shorter than 15 characters; the server does not start/);
  });

  test.each([
    ['a PUBLIC identifier', (url: string) => `<!DOCTYPE properties PUBLIC "-//Sun//DTD Properties//EN" "${url}/public.dtd">`],
    ['a single-quoted system identifier', (url: string) => `<!DOCTYPE properties SYSTEM '${url}/single.dtd'>`],
    ['no DOCTYPE at all', () => ''],
  ])('when the DOCTYPE has %s, then the server starts and fetches nothing', async (name, doctype) => {
    const running = await startWith(serverAuthXml(SERVER_PASSWORD, doctype(trap.url)), `doctype-${name.replace(/\W+/g, '-')}`);
    await running.close();
    expect(trap.requests).toEqual([]);
  });

  test('when the DOCTYPE declares entities, then the server does not start and says the file may not declare them', async () => {
    const doctype = `<!DOCTYPE properties [<!ENTITY secret SYSTEM "${trap.url}/secret">]>`;
    await expect(startWith(serverAuthXml('&secret;-and-more-text', doctype), 'entities')).rejects.toThrow(/server-auth file .* may only name an external DTD/);
    expect(trap.requests).toEqual([]);
  });

  test('when the server-auth file starts with a byte order mark, then the server starts', async () => {
    const running = await startWith(`\uFEFF${serverAuthXml(SERVER_PASSWORD)}`, 'bom');
    await running.close();
  });

  test('when the server-auth file is not well-formed, then the server does not start and says so', async () => {
    await expect(startWith('<properties><entry key="username">admin</entry>', 'broken')).rejects.toThrow(/server-auth file .* is not well-formed XML/);
  });

  test('when the server-auth file has no password entry, then the server does not start and names the entries it needs', async () => {
    const content = '<?xml version="1.0"?><properties><entry key="username">admin</entry></properties>';
    await expect(startWith(content, 'no-password')).rejects.toThrow(/"username" and "password"/);
  });

  test('when the server-auth file is missing, then the server does not start and names the file', async () => {
    const config = { ...DEFAULTS, host: '127.0.0.1', port: 0, db: newDb('missing'), certs: freshPkiDir(), serverAuth: join(dir, 'nope.xml'), logLevel: 'silent' as const };
    await expect(startServer(config, createLogger('silent'))).rejects.toThrow(/Cannot read the server-auth file .*nope\.xml/);
  });

  test('when password authentication is switched off, then even the right server credentials get 401', async () => {
    const file = join(dir, 'off.xml');
    writeFileSync(file, serverAuthXml(SERVER_PASSWORD));
    const server = await startTestServer({ serverAuth: file, passwordAuth: false });
    try {
      expectRefused(await server.request('GET', '/u.xml', { client: null, headers: basic(SERVER_USER, SERVER_PASSWORD) }));
    } finally {
      await server.close();
    }
  });
});
