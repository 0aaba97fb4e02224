import { readFileSync, rmSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
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
const THIRD = '127.0.0.3';
const USER_PASSWORD = 'throttled user password';
const OTHER_PASSWORD = 'other user password';
/** Parallel guesses in the race tests: far more than the limit, arriving before any is answered. */
const PARALLEL = 200;

function expectThrottled(res: Response, windowSeconds = 60, whose = 'from this address'): void {
  expect(res.status).toBe(429);
  const retryAfter = String(res.headers['retry-after']);
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(retryAfter)).toBeLessThanOrEqual(windowSeconds);
  expect(res.body).toContain(`Too many failed authentication attempts ${whose}; retry in `);
  expect(res.body).toMatch(/retry in \d+ seconds\./);
}

/** The reasons of the 'authentication refused' log lines: each one is a check the server made and refused. */
function refusals(server: TestServer): string[] {
  return server.logs
    .map((line) => JSON.parse(line) as { msg: string; reason?: string })
    .filter((entry) => entry.msg === 'authentication refused')
    .map((entry) => entry.reason ?? '');
}

const countOf = (statuses: number[], status: number): number => statuses.filter((s) => s === status).length;

/**
 * `count` requests from one address that reach the server together: each on its own keep-alive
 * connection, opened (TLS handshake and all) by a harmless GET /status.json first, so that
 * handshakes do not spread the guesses out in time.
 */
async function burst(server: TestServer, address: string, count: number, request: (i: number) => { path: string; headers: Record<string, string>; body?: string; method: string }): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: count, maxFreeSockets: count });
  const ca = readFileSync(server.pki.ca, 'utf8');
  const call = (method: string, path: string, headers: Record<string, string>, body?: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', servername: 'localhost', port: server.port, method, path, headers, ca, agent, localAddress: address }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  try {
    const warm = await Promise.all(Array.from({ length: count }, () => call('GET', '/status.json', {})));
    expect(warm.every((status) => status === 200)).toBe(true);
    return await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const r = request(i);
        return call(r.method, r.path, r.headers, r.body);
      }),
    );
  } finally {
    agent.destroy();
  }
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
    const seeded = await server.batch(`<flexibee-batch id="throttle-seed"><user><username>throttled.user</username><password>${USER_PASSWORD}</password></user><user><username>other.user</username><password>${OTHER_PASSWORD}</password></user></flexibee-batch>`);
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
  ] as const)('when one address makes %s up to the limit, then even its right credentials get 429 with Retry-After, and another address still gets in', async (_what, kind) => {
    const server = await throttledServer();
    for (let i = 0; i < MAX_FAILURES; i++) expectRefused(await fail[kind](server, ATTACKER));
    expectThrottled(await fail[kind](server, ATTACKER));
    expectThrottled(await succeed[kind](server, ATTACKER));
    expect((await succeed[kind](server, BYSTANDER)).status).toBe(200);
    expect((await succeed[kind](server, BYSTANDER)).status).toBe(200);
  });

  // Until issue 9 a throttled address got 429 even for a registered certificate: a stranger
  // behind a partner's NAT could lock the partner out. A certificate cannot be guessed.
  test('when one address presents unknown certificates up to the limit, then its next unknown one gets 429, its registered valid certificate still gets 200, and another address still gets in', async () => {
    const server = await throttledServer();
    for (let i = 0; i < MAX_FAILURES; i++) expectRefused(await fail.certificate(server, ATTACKER));
    expectThrottled(await fail.certificate(server, ATTACKER));
    expect((await succeed.certificate(server, ATTACKER)).status).toBe(200);
    expect((await succeed.certificate(server, ATTACKER)).status).toBe(200);
    expectThrottled(await fail.certificate(server, ATTACKER));
    expect((await succeed.certificate(server, BYSTANDER)).status).toBe(200);
  });

  test('when one address guesses session ids up to the limit, then its next guess and its logins get 429, its valid certificate still gets in, and another address is not affected', async () => {
    const server = await throttledServer();
    for (let i = 0; i < MAX_FAILURES; i++) expectRefused(await fail.session(server, ATTACKER));
    expectThrottled(await fail.session(server, ATTACKER));
    expectThrottled(await succeed.login(server, ATTACKER));
    expect((await server.request('GET', '/u.json', from(ATTACKER))).status).toBe(200);
    expect((await server.request('GET', '/u.json', from(BYSTANDER))).status).toBe(200);
  });

  test('when the failures are of different kinds, then they count together, and a registered certificate is still not throttled', async () => {
    const server = await throttledServer();
    expectRefused(await fail.login(server, ATTACKER));
    expectRefused(await fail.basic(server, ATTACKER));
    expectRefused(await fail.certificate(server, ATTACKER));
    expectThrottled(await succeed.basic(server, ATTACKER));
    expectThrottled(await fail.session(server, ATTACKER));
    expect((await succeed.certificate(server, ATTACKER)).status).toBe(200);
  });

  test('when an address is throttled, then a 429 on an XML path is a valid winstrom envelope and a JSON path gets a JSON one', async () => {
    const server = await throttledServer();
    for (let i = 0; i < MAX_FAILURES; i++) await fail.certificate(server, ATTACKER);
    const xml = await server.request('GET', '/u.xml', from(ATTACKER, { client: strangerCert() })); // validated against winstrom-error.xsd by the test server
    expectThrottled(xml);
    expect(xml.headers['content-type']).toMatch(/^application\/xml/);
    const json = await server.request('GET', '/u.json', from(ATTACKER, { client: strangerCert() }));
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
    expectThrottled(await succeed.login(server, ATTACKER));
    expectThrottled(await succeed.basic(server, ATTACKER));
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
  describe('parallel guesses are counted before they are checked (issue 9, point 1)', () => {
    test(`when ${PARALLEL} wrong logins (pbkdf2) arrive from one address at once, then only the limit are checked and the rest get 429`, async () => {
      const server = await throttledServer({ passwordHash: 'pbkdf2', pbkdf2Iterations: 20_000 });
      const statuses = await burst(server, ATTACKER, PARALLEL, () => ({
        method: 'POST',
        path: '/login-logout/login',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: 'throttled.user', password: 'a wrong guess' }),
      }));
      const checked = refusals(server).filter((reason) => reason === 'failed login for throttled.user');
      expect(checked).toHaveLength(MAX_FAILURES);
      expect(countOf(statuses, 401)).toBe(MAX_FAILURES);
      expect(countOf(statuses, 429)).toBe(PARALLEL - MAX_FAILURES);
      expectThrottled(await fail.login(server, ATTACKER));
    });

    test(`when ${PARALLEL} guessed session ids arrive from one address at once, then only the limit are looked up and the rest get 429`, async () => {
      const server = await throttledServer();
      const statuses = await burst(server, ATTACKER, PARALLEL, (i) => ({ method: 'GET', path: '/u.xml', headers: withSession(`guessed-session-${i}`) }));
      const checked = refusals(server).filter((reason) => reason === 'unknown or expired session');
      expect(checked).toHaveLength(MAX_FAILURES);
      expect(countOf(statuses, 401)).toBe(MAX_FAILURES);
      expect(countOf(statuses, 429)).toBe(PARALLEL - MAX_FAILURES);
    });

    test('when parallel logins with the right password arrive from a clean address, then none is throttled: each success takes its own attempt back', async () => {
      const server = await throttledServer();
      const answers = await Promise.all(Array.from({ length: MAX_FAILURES * 4 }, () => succeed.login(server, ATTACKER)));
      expect(answers.map((a) => a.status)).toEqual(Array(MAX_FAILURES * 4).fill(200));
      expectRefused(await fail.login(server, ATTACKER));
    });
  });

  describe('per username, and never a registered certificate (issue 9, point 2)', () => {
    test('when one username gets wrong passwords from several addresses up to its own limit, then even its right password gets 429 from a fresh address, while other usernames and registered certificates get in', async () => {
      const server = await throttledServer({ authMaxFailuresPerUser: MAX_FAILURES + 1 });
      for (let i = 0; i < MAX_FAILURES; i++) expectRefused(await fail.login(server, ATTACKER));
      // Usernames are case-insensitive, so is their count.
      expectRefused(await loginJson(server, 'Throttled.User', 'another wrong guess', { localAddress: BYSTANDER }));
      expectThrottled(await succeed.login(server, THIRD), 60, 'for this username');
      expectThrottled(await loginJson(server, 'THROTTLED.USER', USER_PASSWORD, { localAddress: THIRD }), 60, 'for this username');
      expect((await loginJson(server, 'other.user', OTHER_PASSWORD, { localAddress: THIRD })).status).toBe(200);
      expect((await succeed.certificate(server, ATTACKER)).status).toBe(200);
      expect((await succeed.certificate(server, THIRD)).status).toBe(200);
    });

    test('when the server name gets wrong passwords from several addresses up to its limit, then even the right server password gets 429, while certificates still get in', async () => {
      const server = await throttledServer({ authMaxFailuresPerUser: 2 });
      expectRefused(await fail.basic(server, ATTACKER));
      expectRefused(await fail.basic(server, BYSTANDER));
      expectThrottled(await succeed.basic(server, THIRD), 60, 'for this username');
      expect((await succeed.certificate(server, THIRD)).status).toBe(200);
      expect((await succeed.login(server, THIRD)).status).toBe(200);
    });

    test('when a stranger on a partner\'s address (a shared NAT) fails every kind of credential, then the partner\'s registered certificate from that address keeps working', async () => {
      const server = await throttledServer();
      for (let i = 0; i < MAX_FAILURES * 3; i++) {
        await fail.login(server, ATTACKER);
        await fail.basic(server, ATTACKER);
        await fail.session(server, ATTACKER);
        await fail.certificate(server, ATTACKER);
      }
      const batch = await server.batch('<flexibee-batch id="partner-after-stranger"><user><username>partner.user</username></user></flexibee-batch>', from(ATTACKER));
      expect(batch.status).toBe(200);
      expect((await server.request('GET', '/u/partner.user.json', from(ATTACKER))).status).toBe(200);
    });
  });
});
