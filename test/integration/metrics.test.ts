import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { issueCertificate } from '../../src/pki/dev-pki';
import { basic, loginJson, SERVER_PASSWORD, SERVER_USER, withSession, writeServerAuth } from '../support/auth';
import { startTestServer, type Response, type TestServer } from '../support/server';

/** The value of one sample of Prometheus text: `name{labels} value`, labels in any order. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('GET /metrics: Prometheus text for operators (issue 10, point 4)', () => {
  let server: TestServer;
  let serverAuthFile: string;

  beforeAll(async () => {
    serverAuthFile = writeServerAuth();
    server = await startTestServer({ serverAuth: serverAuthFile });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dirname(serverAuthFile), { recursive: true, force: true });
  });

  const scrape = async (): Promise<string> => {
    const res = await server.request('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(String(res.headers['content-type'])).toMatch(/^text\/plain; charset=utf-8/);
    return res.body;
  };

  test('when no credential is sent, then /metrics answers 401 like every other endpoint', async () => {
    const res = await server.request('GET', '/metrics', { client: null });
    expect(res.status).toBe(401);
  });

  test('when a certificate the registry does not know is sent, then /metrics answers 401', async () => {
    const stranger = issueCertificate({ commonName: 'stranger', kind: 'client' });
    expect((await server.request('GET', '/metrics', { client: { cert: stranger.certPem, key: stranger.keyPem } })).status).toBe(401);
  });

  test('when the root-scope dev certificate or the server password asks, then it gets the metrics', async () => {
    const text = await scrape();
    for (const name of ['flexi_batches_total', 'flexi_batch_duration_seconds', 'flexi_operations_total', 'flexi_auth_failures_total', 'flexi_store_commit_duration_seconds', 'flexi_http_requests_in_flight', 'process_cpu_seconds_total']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    const byPassword = await server.request('GET', '/metrics', { client: null, headers: basic(SERVER_USER, SERVER_PASSWORD) });
    expect(byPassword.status).toBe(200);
    expect(byPassword.body).toContain('# TYPE flexi_batches_total counter');
  });

  test('when a stored user asks, through impersonation or its session, then /metrics answers 403: the figures span every tenant', async () => {
    const seeded = await server.batch(
      '<flexibee-batch id="metrics-users"><user><username>metrics.admin</username><password>a long enough password</password><permissions><manageAll>true</manageAll><licenseManagement>true</licenseManagement></permissions></user></flexibee-batch>',
    );
    expect(seeded.status).toBe(200);
    const impersonated: Response = await server.request('GET', '/metrics', { headers: { 'X-FlexiBee-Authorization': 'metrics.admin' } });
    expect(impersonated.status).toBe(403);
    expect(impersonated.body).toContain('/metrics is for the operators');
    const login = await loginJson(server, 'metrics.admin', 'a long enough password');
    const session = (JSON.parse(login.body) as { authSessionId: string }).authSessionId;
    expect((await server.request('GET', '/metrics', { client: null, headers: withSession(session) })).status).toBe(403);
  });

  test('when batches are applied, dry-run and refused, then they are counted by outcome, their operations by entity and status, and their commits timed', async () => {
    const before = await scrape();
    const applied = await server.batch(
      '<flexibee-batch id="metrics-a"><user><username>m.one</username></user><user><username>m.two</username></user><company><id>metrics_co</id><name>Metrics</name><adminUser>m.one</adminUser></company><access user="nobody">metrics_co</access></flexibee-batch>',
    );
    expect(applied.status).toBe(200);
    expect((await server.batch('<flexibee-batch id="metrics-d" dry-run="true"><user><username>m.three</username></user></flexibee-batch>')).status).toBe(200);
    expect((await server.batch('<flexibee-batch><user><username>m.four</username></user></flexibee-batch>')).status).toBe(400);
    const after = await scrape();
    const grew = (name: string, labels: Record<string, string>): number => (sample(after, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);
    expect(grew('flexi_batches_total', { outcome: 'applied' })).toBe(1);
    expect(grew('flexi_batches_total', { outcome: 'dry-run' })).toBe(1);
    expect(grew('flexi_batches_total', { outcome: 'bad-request' })).toBe(1);
    expect(grew('flexi_batch_duration_seconds_count', { outcome: 'applied' })).toBe(1);
    expect(grew('flexi_operations_total', { entity: 'USER', status: 'CREATED' })).toBe(3);
    expect(grew('flexi_operations_total', { entity: 'COMPANY', status: 'CREATED' })).toBe(1);
    expect(grew('flexi_operations_total', { entity: 'ACCESS_LIST', status: 'FAILED' })).toBe(1);
    expect(grew('flexi_store_commit_duration_seconds_count', { store: server.db.startsWith('postgres') ? 'postgres' : 'sqlite' })).toBeGreaterThanOrEqual(1);
    // The scrape itself is the one request in flight.
    expect(sample(after, 'flexi_http_requests_in_flight')).toBe(1);
  });

  test('when authentications fail, then each is counted by the kind of failure, and every kind is listed from the start', async () => {
    const fresh = await startTestServer({ serverAuth: serverAuthFile, authMaxFailures: 2 });
    try {
      const first = (await fresh.request('GET', '/metrics')).body;
      expect(sample(first, 'flexi_auth_failures_total', { reason: 'login-failed' })).toBe(0);
      expect(sample(first, 'flexi_auth_failures_total', { reason: 'throttled' })).toBe(0);
      const from = '127.0.0.3';
      expect((await fresh.request('GET', '/u.json', { client: null, headers: basic(SERVER_USER, 'a wrong guess of the password'), localAddress: from })).status).toBe(401);
      expect((await fresh.request('GET', '/u.json', { client: null, headers: withSession('a-guessed-session-id'), localAddress: from })).status).toBe(401);
      expect((await fresh.request('GET', '/u.json', { client: null, localAddress: from })).status).toBe(429);
      const text = (await fresh.request('GET', '/metrics')).body;
      expect(sample(text, 'flexi_auth_failures_total', { reason: 'wrong-server-password' })).toBe(1);
      expect(sample(text, 'flexi_auth_failures_total', { reason: 'session-unknown' })).toBe(1);
      expect(sample(text, 'flexi_auth_failures_total', { reason: 'throttled' })).toBe(1);
    } finally {
      await fresh.close();
    }
  });
});
