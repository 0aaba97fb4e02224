import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../../src/config';
import { issueCertificate, type IssuedCertificate } from '../../src/pki/dev-pki';
import { basic, expectRefused, loginJson, SERVER_PASSWORD, SERVER_USER, withSession, writeServerAuth } from '../support/auth';
import { startTestServer, type RequestOptions, type Response, type TestServer } from '../support/server';

const MAX_FAILURES = 3;
/** The address that fails, and a second loopback address that must not be affected. */
const ATTACKER = '127.0.0.1';
const BYSTANDER = '127.0.0.2';
const USER_PASSWORD = 'throttled user password';

function expectThrottled(res: Response, windowSeconds = 60): void {
  expect(res.status).toBe(429);
  const retryAfter = String(res.headers['retry-after']);
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(retryAfter)).toBeLessThanOrEqual(windowSeconds);
  expect(res.body).toMatch(/Too many failed authentication attempts from this address; retry in \d+ seconds\./);
}

describe(`throttling failed authentications (--auth-max-failures ${MAX_FAILURES})`, () => {
  let serverAuthFile: string;
  let stranger: IssuedCertificate;
  const running: TestServer[] = [];

  beforeAll(() => {
    serverAuthFile = writeServerAuth();
    stranger = issueCertificate({ commonName: 'unregistered stranger', kind: 'client' });
  });
  afterAll(() => rmSync(dirname(serverAuthFile), { recursive: true, force: true }));
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.close()));
  });

  /** A fresh server per test, so every test starts with clean failure counts. */
  async function throttledServer(overrides: Partial<Config> = {}): Promise<TestServer> {
    const server = await startTestServer({ serverAuth: serverAuthFile, authMaxFailures: MAX_FAILURES, ...overrides });
    running.push(server);
    const seeded = await server.batch(`<flexibee-batch id="throttle-seed"><user><username>throttled.user</username><password>${USER_PASSWORD}</password></user></flexibee-batch>`);
    expect(seeded.status).toBe(200);
    return server;
  }

  const from = (localAddress: string, options: RequestOptions = {}): RequestOptions => ({ ...options, localAddress });
  const strangerCert = (): RequestOptions['client'] => ({ cert: stranger.certPem, key: stranger.keyPem });

  /** One failed attempt of each kind, from an address. */
  const fail = {
    login: (s: TestServer, address: string) => loginJson(s, 'throttled.user', 'a wrong guess', { localAddress: address }),
    basic: (s: TestServer, address: string) => s.request('GET', '/u.xml', from(address, { client: null, headers: basic(SERVER_USER, 'a-wrong-guess-of-the-password') })),
    certificate: (s: TestServer, address: string) => s.request('GET', '/u.xml', from(address, { client: strangerCert() })),
    session: (s: TestServer, address: string) => s.request('GET', '/u.xml', from(address, { client: null, headers: withSession('a-guessed-session-id') })),
  };

  /** The same kind of attempt done right. */
  const succeed = {
    login: (s: TestServer, address: string) => loginJson(s, 'throttled.user', USER_PASSWORD, { localAddress: address }),
    basic: (s: TestServer, address: string) => s.request('GET', '/u.json', from(address, { client: null, headers: basic(SERVER_USER, SERVER_PASSWORD) })),
    certificate: (s: TestServer, address: string) => s.request('GET', '/u.json', from(address)),
  };

  test.each([
    ['failed logins', 'login'],
    ['failed server passwords (Basic)', 'basic'],
    ['failed certificates', 'certificate'],
  ] as const)('when one address makes %s up to the limit, then even its right credentials get 429 with Retry-After, and another address still gets in', async (_what, kind) => {
    const server = await throttledServer();
    for (let i = 0; i < MAX_FAILURES; i++) expectRefused(await fail[kind](server, ATTACKER));
    expectThrottled(await fail[kind](server, ATTACKER));
    expectThrottled(await succeed[kind](server, ATTACKER));
    expect((await succeed[kind](server, BYSTANDER)).status).toBe(200);
    expect((await succeed[kind](server, BYSTANDER)).status).toBe(200);
  });

  test('when one address guesses session ids up to the limit, then its next request gets 429 and another address is not affected', async () => {
    const server = await throttledServer();
    for (let i = 0; i < MAX_FAILURES; i++) expectRefused(await fail.session(server, ATTACKER));
    expectThrottled(await server.request('GET', '/u.xml', from(ATTACKER)));
    expect((await server.request('GET', '/u.json', from(BYSTANDER))).status).toBe(200);
  });

  test('when the failures are of different kinds, then they count together', async () => {
    const server = await throttledServer();
    expectRefused(await fail.login(server, ATTACKER));
    expectRefused(await fail.basic(server, ATTACKER));
    expectRefused(await fail.certificate(server, ATTACKER));
    expectThrottled(await succeed.certificate(server, ATTACKER));
  });

  test('when an address is throttled, then a 429 on an XML path is a valid winstrom envelope and a JSON path gets a JSON one', async () => {
    const server = await throttledServer();
    for (let i = 0; i < MAX_FAILURES; i++) await fail.certificate(server, ATTACKER);
    const xml = await server.request('GET', '/u.xml', from(ATTACKER)); // validated against winstrom-error.xsd by the test server
    expectThrottled(xml);
    expect(xml.headers['content-type']).toMatch(/^application\/xml/);
    const json = await server.request('GET', '/u.json', from(ATTACKER));
    expectThrottled(json);
    expect(JSON.parse(json.body)).toEqual({ winstrom: { '@version': '1.0', success: false, message: expect.stringMatching(/^Too many failed/) } });
  });

  test('when an address is throttled, then GET /status.json still answers it', async () => {
    const server = await throttledServer();
    for (let i = 0; i < MAX_FAILURES; i++) await fail.basic(server, ATTACKER);
    expect((await server.request('GET', '/status.json', from(ATTACKER, { client: null }))).status).toBe(200);
  });

  test('when a success comes between failures, then it does not wipe the count', async () => {
    const server = await throttledServer();
    expectRefused(await fail.basic(server, ATTACKER));
    expectRefused(await fail.login(server, ATTACKER));
    expect((await succeed.certificate(server, ATTACKER)).status).toBe(200);
    expect((await succeed.login(server, ATTACKER)).status).toBe(200);
    expectRefused(await fail.certificate(server, ATTACKER));
    expectThrottled(await succeed.certificate(server, ATTACKER));
  });

  test('when requests fail for reasons other than authentication, then they do not count', async () => {
    const server = await throttledServer();
    for (let i = 0; i < MAX_FAILURES * 2; i++) {
      const malformed = await server.request('POST', '/login-logout/login', from(ATTACKER, { client: null, headers: { 'Content-Type': 'application/json' }, body: '{' }));
      expect(malformed.status).toBe(400);
      const forbidden = await server.request('GET', '/u.xml', from(ATTACKER, { headers: { 'X-FlexiBee-Authorization': 'no.such.user' } }));
      expect(forbidden.status).toBe(403);
    }
    expect((await succeed.login(server, ATTACKER)).status).toBe(200);
  });

  test('when the failure window has passed, then the address gets in again, even if it kept knocking while throttled', async () => {
    const windowMs = 1000;
    const server = await throttledServer({ authFailureWindowMs: windowMs });
    for (let i = 0; i < MAX_FAILURES; i++) expectRefused(await fail.login(server, ATTACKER));
    expectThrottled(await succeed.login(server, ATTACKER), 1);
    await sleep(windowMs / 2);
    expectThrottled(await succeed.login(server, ATTACKER), 1);
    await sleep(windowMs);
    expect((await succeed.login(server, ATTACKER)).status).toBe(200);
  });
});
