import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { BatchExecutor } from '../../src/batch/execute';
import { hashPolicyOf } from '../../src/config';
import { ROOT_GROUP } from '../../src/domain/principals';
import type { SubscriptionView } from '../../src/domain/webhooks';
import { createLogger } from '../../src/log';
import { issueCertificate } from '../../src/pki/dev-pki';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { WebhookDeliveries } from '../../src/tasks/deliveries';
import { dropTestDb, newTestDb } from '../support/stores';
import { entries, startTestServer, statuses, type TestServer } from '../support/server';
import { eventsOf, newSecret, verified, WebhookReceiver, type Received } from '../support/webhook-receiver';

const AS = 'X-FlexiBee-Authorization';

interface FeedEvent {
  seq: number;
  type: string;
  group: string;
  entity: { type: string; id: string };
  [more: string]: unknown;
}

/** What a test needs of one server: batches, the feed, the listing. */
function helpers(get: () => TestServer) {
  const batch = async (id: string, body: string, options: Parameters<TestServer['batch']>[1] = {}): Promise<string[]> => {
    const res = await get().batch(`<flexibee-batch id="${id}">${body}</flexibee-batch>`, options);
    expect(res.status).toBe(200);
    return statuses(res.body);
  };
  const users = (group: string, names: readonly string[]): string => names.map((n) => `<user><username>${n}</username><licenseGroup>${group}</licenseGroup></user>`).join('');
  const subscription = (id: string, fields: string): string => `<subscription><id>${id}</id>${fields}</subscription>`;
  const feed = async (): Promise<FeedEvent[]> => {
    const all: FeedEvent[] = [];
    for (let after = 0; ; ) {
      const page = JSON.parse((await get().request('GET', `/events.json?after=${after}&limit=1000`)).body) as { events: FeedEvent[]; next: number };
      all.push(...page.events);
      if (page.events.length < 1000) return all;
      after = page.next;
    }
  };
  const listed = async (id: string): Promise<SubscriptionView> => {
    const res = await get().request('GET', '/subscriptions.json');
    const found = (JSON.parse(res.body) as { subscriptions: SubscriptionView[] }).subscriptions.find((s) => s.id === id);
    if (!found) throw new Error(`subscription ${id} is not listed`);
    return found;
  };
  return { batch, users, subscription, feed, listed };
}

const userIds = (deliveries: readonly Received[]): string[] => deliveries.flatMap((d) => eventsOf(d).filter((e) => e.entity.type === 'USER').map((e) => e.entity.id));

/**
 * Webhook deliveries (SPEC §10.2, issue 12 point 2): a real endpoint on 127.0.0.1 receives them from
 * the server's own task runner; every delivery is verified with the standardwebhooks library. Each
 * test has a license group of its own, so that it sees only its own events.
 */
describe('webhook deliveries (SPEC §10.2)', () => {
  let server: TestServer;
  let receiver: WebhookReceiver;
  let other: { cert: string; key: string };
  const h = helpers(() => server);
  const secret = newSecret();

  /** One subscription of a test: to `path`, in `group`; the tests' batches come from its owner, so excludeOwn is off unless `fields` says. */
  const subscribed = (id: string, group: string, path: string, fields = ''): string =>
    h.subscription(id, `<url>${receiver.url(path)}</url><secret>${secret}</secret><licenseGroup>${group}</licenseGroup><excludeOwn>false</excludeOwn>${fields}`);
  /**
   * A group of its own (with the groups of `groups` below it), then — in a batch of their own, so
   * that they receive only the test's events — the subscription to `path` and those of `more`.
   */
  const setup = async (group: string, id: string, path: string, more = '', groups = ''): Promise<void> => {
    const made = await h.batch(`${id}-groups`, `<licenseGroup><id>${group}</id><name>${group}</name></licenseGroup>${groups}`);
    const subscriptions = await h.batch(`${id}-subscriptions`, subscribed(id, group, path) + more);
    expect([...made, ...subscriptions].every((s) => s === 'CREATED')).toBe(true);
    since.set(group, await server.running.store.lastEventSeq());
  };
  /** The last seq before a test's subscriptions, by the test's group. */
  const since = new Map<string, number>();
  /** The feed's events of a test's group since its subscriptions were made: what they receive. */
  const inGroup = async (group: string): Promise<FeedEvent[]> => (await h.feed()).filter((e) => e.group === group && e.seq > (since.get(group) ?? 0));
  const stateOf = (id: string, state: string): Promise<SubscriptionView> => receiver.waitFor(async () => ((await h.listed(id)).state === state ? h.listed(id) : undefined));

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    server = await startTestServer({ webhookAllowHosts: ['127.0.0.1'], webhookRetryMs: [0, 0], webhookMaxEvents: 3 });
    const cert = issueCertificate({ commonName: 'another partner', kind: 'client' });
    other = { cert: cert.certPem, key: cert.keyPem };
    expect(await h.batch('wd-boss', '<user><username>wd.boss</username><permissions><manageAll>true</manageAll></permissions></user>')).toEqual(['CREATED']);
  });
  afterAll(async () => {
    await server.close();
    await receiver.close();
  });

  test('when a batch commits events, then the endpoint gets them combined in one delivery, signed as Standard Webhooks says, with the events exactly as the feed has them', async () => {
    await setup('wd_a', 'wd-a', '/a');
    expect(await h.batch('wd-a-1', h.users('wd_a', ['wd.a1', 'wd.a2']))).toEqual(['CREATED', 'CREATED']);
    const [delivery] = await receiver.waitForRequests('/a', 1);
    const body = verified(delivery, secret);
    expect(delivery.headers['content-type']).toBe('application/json');
    expect(delivery.headers['webhook-id']).toMatch(/^msg_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(delivery.headers['webhook-timestamp']).toMatch(/^\d{10}$/);
    expect(delivery.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(Object.keys(body)).toEqual(['type', 'timestamp', 'data']);
    expect(body.type).toBe('flexi.events');
    expect(body.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(body.data.events).toEqual(await inGroup('wd_a'));
    expect(body.data.events.map((e) => [e.type, e.entity.id])).toEqual([
      ['USER_CREATED', 'wd.a1'],
      ['USER_CREATED', 'wd.a2'],
    ]);
  });

  test('when more events wait than --webhook-max-events, then they go in several deliveries, in seq order, one at a time', async () => {
    await setup('wd_b', 'wd-b', '/b');
    // Each answer takes a moment, so a second delivery sent too early would overlap the first.
    receiver.respond('/b', () => ({ status: 200, hold: new Promise((resolve) => setTimeout(resolve, 30)) }));
    const names = ['wd.b1', 'wd.b2', 'wd.b3', 'wd.b4', 'wd.b5', 'wd.b6', 'wd.b7'];
    await h.batch('wd-b-1', h.users('wd_b', names));
    const got = await receiver.waitFor(() => (userIds(receiver.at('/b')).length >= 7 ? receiver.at('/b') : undefined));
    expect(got.map((d) => eventsOf(d).length)).toEqual([3, 3, 1]);
    expect(userIds(got)).toEqual(names);
    expect(new Set(got.map((d) => d.headers['webhook-id'])).size).toBe(3);
    for (const d of got) verified(d, secret);
    expect(receiver.mostOpenAt('/b')).toBe(1);
  });

  test('when a delivery is not answered yet, then the next one waits for it, and later batches come after it in order', async () => {
    await setup('wd_c', 'wd-c', '/c');
    const first = receiver.gate();
    receiver.respond('/c', (_r, n) => (n === 0 ? { status: 204, hold: first.hold } : { status: 204 }));
    await h.batch('wd-c-1', h.users('wd_c', ['wd.c1']));
    await receiver.waitForRequests('/c', 1);
    await h.batch('wd-c-2', h.users('wd_c', ['wd.c2']));
    await h.batch('wd-c-3', h.users('wd_c', ['wd.c3', 'wd.c4']));
    const released = Date.now();
    first.release();
    const got = await receiver.waitFor(() => (userIds(receiver.at('/c')).length >= 4 ? receiver.at('/c') : undefined));
    expect(userIds(got)).toEqual(['wd.c1', 'wd.c2', 'wd.c3', 'wd.c4']);
    expect(got.slice(1).every((d) => d.at >= released)).toBe(true);
    // What waited went out combined: the second delivery carries both later batches (up to the maximum of 3).
    expect(eventsOf(got[1]).length).toBe(3);
    expect(receiver.mostOpenAt('/c')).toBe(1);
  });

  test('when a delivery fails, then it is retried with the same webhook-id and the same body, each attempt signed anew, until a 2xx', async () => {
    await setup('wd_d', 'wd-d', '/d');
    receiver.respond('/d', (_r, n) => ({ status: [500, 503, 204][n] ?? 204 }));
    await h.batch('wd-d-1', h.users('wd_d', ['wd.d1']));
    const got = await receiver.waitForRequests('/d', 3);
    expect(new Set(got.map((d) => d.headers['webhook-id'])).size).toBe(1);
    expect(new Set(got.map((d) => d.body)).size).toBe(1);
    for (const d of got) verified(d, secret);
    const listed = await receiver.waitFor(async () => {
      const s = await h.listed('wd-d');
      return s.lastDelivery?.status === 204 ? s : undefined;
    });
    expect(listed).toMatchObject({ state: 'active', pending: 0, lastError: null, nextAttemptAt: null, lastDelivery: { seq: (await inGroup('wd_d'))[0].seq } });
    expect(receiver.at('/d')).toHaveLength(3);
  });

  test('when the endpoint answers 410 Gone, then the subscription is suspended at once, visibly, sends nothing more and keeps its events; the metrics show it', async () => {
    await setup('wd_e', 'wd-e', '/e', subscribed('wd-e-control', 'wd_e', '/e-control'));
    receiver.respond('/e', () => ({ status: 410 }));
    await h.batch('wd-e-1', h.users('wd_e', ['wd.e1']));
    const suspended = await stateOf('wd-e', 'suspended');
    expect(suspended).toMatchObject({ lastDelivery: { status: 410 }, lastError: { message: 'suspended: the endpoint answered 410 Gone' }, nextAttemptAt: null });
    await h.batch('wd-e-2', h.users('wd_e', ['wd.e2', 'wd.e3']));
    // The control subscription of the same group has had the later batch: the suspended one would have had it by now.
    await receiver.waitFor(() => userIds(receiver.at('/e-control')).includes('wd.e3'));
    expect(receiver.at('/e')).toHaveLength(1);
    expect(await h.listed('wd-e')).toMatchObject({ state: 'suspended', pending: 3 });
    const metrics = (await server.request('GET', '/metrics')).body;
    const value = (line: string): number => Number(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(metrics)?.[1]);
    expect(value('flexi_webhook_deliveries_total{outcome="gone"}')).toBeGreaterThanOrEqual(1);
    expect(value('flexi_webhook_deliveries_total{outcome="delivered"}')).toBeGreaterThanOrEqual(2);
    expect(value('flexi_webhook_suspensions_total{reason="gone"}')).toBeGreaterThanOrEqual(1);
    expect(value('flexi_webhook_subscriptions{state="suspended"}')).toBeGreaterThanOrEqual(1);
    expect(value('flexi_webhook_delivery_lag_seconds{state="suspended"}')).toBeGreaterThan(0);
    expect(value('flexi_webhook_delivery_lag_seconds{state="inactive"}')).toBe(0);
  });

  test('when every attempt fails, then after the last retry the subscription is suspended, and <active>true</active> resumes it with the backlog in order, the delivery it gave up on first', async () => {
    await setup('wd_f', 'wd-f', '/f');
    let failing = true;
    receiver.respond('/f', () => ({ status: failing ? 500 : 204 }));
    await h.batch('wd-f-1', h.users('wd_f', ['wd.f1']));
    const suspended = await stateOf('wd-f', 'suspended');
    expect(suspended.lastError?.message).toBe('suspended: the endpoint answered HTTP 500; no retry left after 3 attempts');
    const attempts = receiver.at('/f');
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((d) => d.headers['webhook-id'])).size).toBe(1);
    await h.batch('wd-f-2', h.users('wd_f', ['wd.f2', 'wd.f3']));
    await h.batch('wd-f-3', h.users('wd_f', ['wd.f4', 'wd.f5']));
    expect((await h.listed('wd-f')).pending).toBe(5);
    failing = false;
    const resumed = await server.batch(`<flexibee-batch id="wd-f-4">${h.subscription('wd-f', '<active>true</active>')}</flexibee-batch>`);
    expect(entries(resumed.body)).toEqual([{ type: 'SUBSCRIPTION', action: 'CREATE_UPDATE', id: 'wd-f', status: 'UPDATED', message: 'resumed' }]);
    const after = await receiver.waitFor(() => {
      const got = receiver.at('/f').slice(3);
      return userIds(got).length >= 5 ? got : undefined;
    });
    expect(after[0].headers['webhook-id']).toBe(attempts[0].headers['webhook-id']);
    expect(after[0].body).toBe(attempts[0].body);
    expect(after.flatMap(eventsOf)).toEqual(await inGroup('wd_f'));
    for (const d of after) verified(d, secret);
    expect(await h.listed('wd-f')).toMatchObject({ state: 'active', pending: 0, lastError: null });
  });

  test('when excludeOwn is on, then the owner is not told of its own changes — a credential of its credential, a user of that user — and with it off, it is', async () => {
    await setup('wd_h', 'wd-h-all', '/h-all');
    expect(await h.batch('wd-h-0', h.subscription('wd-h', `<url>${receiver.url('/h')}</url><secret>${secret}</secret><licenseGroup>wd_h</licenseGroup>`))).toEqual(['CREATED']);
    expect((await h.listed('wd-h')).excludeOwn).toBe(true);
    await server.running.store.addFingerprint({ fingerprint: fingerprintOfCertificate(other.cert), scope: 'wd_h', label: 'wd other' });
    await h.batch('wd-h-1', h.users('wd_h', ['wd.h.own']));
    expect(await h.batch('wd-h-2', '<user><username>wd.h.other</username></user>', { client: other })).toEqual(['CREATED']);
    await receiver.waitFor(() => userIds(receiver.at('/h')).includes('wd.h.other'));
    expect(userIds(receiver.at('/h'))).toEqual(['wd.h.other']);
    await receiver.waitFor(() => userIds(receiver.at('/h-all')).includes('wd.h.other'));
    expect(userIds(receiver.at('/h-all'))).toEqual(['wd.h.own', 'wd.h.other']);

    const byBoss = h.subscription('wd-h-boss', `<url>${receiver.url('/h-boss')}</url><secret>${secret}</secret><licenseGroup>wd_h</licenseGroup>`);
    expect(await h.batch('wd-h-3', byBoss, { headers: { [AS]: 'wd.boss' } })).toEqual(['CREATED']);
    expect((await h.listed('wd-h-boss')).owner).toEqual({ credential: expect.stringMatching(/^certificate /), user: 'wd.boss' });
    await h.batch('wd-h-4', h.users('wd_h', ['wd.h.byboss']), { headers: { [AS]: 'wd.boss' } });
    await h.batch('wd-h-5', h.users('wd_h', ['wd.h.bycert']));
    await receiver.waitFor(() => userIds(receiver.at('/h-boss')).includes('wd.h.bycert'));
    expect(userIds(receiver.at('/h-boss'))).toEqual(['wd.h.bycert']);
  });

  test("when a group leaves the subscription's subtree before its events were delivered, then they are not delivered: scope is checked at delivery", async () => {
    await setup('wd_i', 'wd-i', '/i', '', '<licenseGroup><id>wd_i1</id><name>I1</name><parent>wd_i</parent></licenseGroup>');
    expect((await h.listed('wd-i')).pending).toBe(0);
    receiver.respond('/i', (_r, n) => ({ status: n === 0 ? 410 : 204 }));
    await h.batch('wd-i-1', h.users('wd_i', ['wd.i.kept']));
    await stateOf('wd-i', 'suspended');
    await h.batch('wd-i-2', h.users('wd_i1', ['wd.i.moved']));
    expect((await h.listed('wd-i')).pending).toBe(2);
    await h.batch('wd-i-3', `<licenseGroup><id>wd_i1</id><parent>${ROOT_GROUP}</parent></licenseGroup>`);
    await h.batch('wd-i-4', h.users('wd_i', ['wd.i.later']));
    expect((await h.listed('wd-i')).pending).toBe(2);
    await h.batch('wd-i-5', h.subscription('wd-i', '<active>true</active>'));
    const got = await receiver.waitFor(() => (userIds(receiver.at('/i')).includes('wd.i.later') ? receiver.at('/i') : undefined));
    expect(userIds(got.slice(1))).toEqual(['wd.i.kept', 'wd.i.later']);
    expect(got[1].headers['webhook-id']).toBe(got[0].headers['webhook-id']);
  });

  test('when the secret is replaced, then during the overlap each delivery carries both signatures, the new one first, and verifies with either secret', async () => {
    await setup('wd_j', 'wd-j', '/j');
    await h.batch('wd-j-1', h.users('wd_j', ['wd.j1']));
    const [before] = await receiver.waitForRequests('/j', 1);
    expect(before.headers['webhook-signature'].split(' ')).toHaveLength(1);
    const second = newSecret(48);
    expect(await h.batch('wd-j-2', h.subscription('wd-j', `<secret>${second}</secret>`))).toEqual(['UPDATED']);
    await h.batch('wd-j-3', h.users('wd_j', ['wd.j2']));
    const [, after] = await receiver.waitForRequests('/j', 2);
    const signatures = after.headers['webhook-signature'].split(' ');
    expect(signatures).toHaveLength(2);
    const timestamp = new Date(Number(after.headers['webhook-timestamp']) * 1000);
    expect(signatures[0]).toBe(new Webhook(second).sign(after.headers['webhook-id'], timestamp, after.body));
    expect(signatures[1]).toBe(new Webhook(secret).sign(after.headers['webhook-id'], timestamp, after.body));
    expect(userIds([verified(after, secret) && after])).toEqual(['wd.j2']);
    verified(after, second);
  });

  test('when the endpoint answers 429 with Retry-After, then the retry waits that long even though the back-off would not', async () => {
    await setup('wd_k', 'wd-k', '/k');
    receiver.respond('/k', (_r, n) => (n === 0 ? { status: 429, headers: { 'retry-after': '2' } } : { status: 204 }));
    await h.batch('wd-k-1', h.users('wd_k', ['wd.k1']));
    const waiting = await receiver.waitFor(async () => {
      const s = await h.listed('wd-k');
      return s.lastDelivery?.status === 429 ? s : undefined;
    });
    expect(Date.parse(waiting.nextAttemptAt ?? '')).toBeGreaterThanOrEqual(Date.parse(waiting.lastDelivery?.time ?? '') + 2000);
    expect(waiting.lastError?.message).toBe('the endpoint answered HTTP 429');
    const [first, retry] = await receiver.waitForRequests('/k', 2);
    expect(retry.at - first.at).toBeGreaterThanOrEqual(2000);
    expect(retry.headers['webhook-id']).toBe(first.headers['webhook-id']);
  });

  // Runs last in this file's order: every request any test above made the endpoint receive.
  test('when all of the above has been delivered, then every request the endpoint received verifies with the subscriptions\' secret', () => {
    expect(receiver.received.length).toBeGreaterThan(20);
    for (const delivery of receiver.received) expect(() => verified(delivery, secret)).not.toThrow();
  });
});

describe('webhook deliveries: timeouts and a secret without overlap (SPEC §10.2)', () => {
  let server: TestServer;
  let receiver: WebhookReceiver;
  const h = helpers(() => server);

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    server = await startTestServer({ webhookAllowHosts: ['127.0.0.1'], webhookRetryMs: [0, 0, 0, 0, 0], webhookTimeoutMs: 300, webhookSecretOverlapMs: 0 });
  });
  afterAll(async () => {
    await server.close();
    await receiver.close();
  });

  test('when the endpoint does not answer within --webhook-timeout, then the attempt counts as failed and is retried with the same webhook-id', async () => {
    const secret = newSecret();
    const never = receiver.gate();
    receiver.respond('/t', (_r, n) => (n === 0 ? { status: 204, hold: never.hold } : { status: 204 }));
    await h.batch('wt-1', '<licenseGroup><id>wt_t</id><name>T</name></licenseGroup>');
    await h.batch('wt-1s', h.subscription('wt-t', `<url>${receiver.url('/t')}</url><secret>${secret}</secret><licenseGroup>wt_t</licenseGroup><excludeOwn>false</excludeOwn>`));
    await h.batch('wt-2', h.users('wt_t', ['wt.t1']));
    const got = await receiver.waitForRequests('/t', 2);
    expect(got[1].headers['webhook-id']).toBe(got[0].headers['webhook-id']);
    expect(got[1].body).toBe(got[0].body);
    for (const d of got) verified(d, secret);
    await receiver.waitFor(async () => (await h.listed('wt-t')).lastDelivery?.status === 204);
  });

  test('when the secret is replaced with no overlap, then deliveries carry only the new signature', async () => {
    const first = newSecret();
    const second = newSecret();
    await h.batch('wt-3', '<licenseGroup><id>wt_o</id><name>O</name></licenseGroup>');
    await h.batch('wt-3s', h.subscription('wt-o', `<url>${receiver.url('/o')}</url><secret>${first}</secret><licenseGroup>wt_o</licenseGroup><excludeOwn>false</excludeOwn>`));
    expect(await h.batch('wt-4', h.subscription('wt-o', `<secret>${second}</secret>`))).toEqual(['UPDATED']);
    expect((await h.listed('wt-o')).previousSecretUntil).toBeNull();
    await h.batch('wt-5', h.users('wt_o', ['wt.o1']));
    const [delivery] = await receiver.waitForRequests('/o', 1);
    expect(delivery.headers['webhook-signature'].split(' ')).toHaveLength(1);
    verified(delivery, second);
    expect(() => verified(delivery, first)).toThrow('No matching signature found');
  });
});

describe('webhook deliveries: the address is checked again at delivery (SPEC §10.2)', () => {
  let receiver: WebhookReceiver;
  let dir: string;
  let db: string;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    dir = mkdtempSync(join(tmpdir(), 'flexi-webhook-recheck-'));
    db = newTestDb(dir);
  });
  afterAll(async () => {
    await receiver.close();
    dropTestDb(db);
    rmSync(dir, { recursive: true, force: true });
  });

  test('when a host allowed at creation is no longer allowed, then its deliveries are refused without a connection, and after the retries it is suspended saying why', async () => {
    const first = await startTestServer({ db, webhookAllowHosts: ['127.0.0.1'] });
    try {
      const made = await first.batch(
        `<flexibee-batch id="wr-1"><subscription><id>wr-l</id><url>https://127.0.0.1:${receiver.port}/l</url><secret>${newSecret()}</secret><excludeOwn>false</excludeOwn></subscription></flexibee-batch>`,
      );
      expect(statuses(made.body)).toEqual(['CREATED']);
    } finally {
      await first.close();
    }
    const second = await startTestServer({ db, webhookRetryMs: [0, 0] });
    try {
      const h = helpers(() => second);
      await h.batch('wr-2', '<user><username>wr.u1</username></user>');
      const suspended = await receiver.waitFor(async () => {
        const s = await h.listed('wr-l');
        return s.state === 'suspended' ? s : undefined;
      });
      expect(suspended.lastError?.message).toBe(
        'suspended: refused: 127.0.0.1 is a loopback address (a webhook may not reach loopback, private, link-local or unspecified addresses); no retry left after 3 attempts',
      );
      expect(suspended.lastDelivery).toMatchObject({ status: null });
      expect(receiver.at('/l')).toHaveLength(0);
    } finally {
      await second.close();
    }
  });
});

describe('webhook deliveries: the job over a store, with DNS of the test (SPEC §10.2)', () => {
  let server: TestServer;
  let receiver: WebhookReceiver;
  const h = helpers(() => server);

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    server = await startTestServer({ tasks: false, webhookAllowHosts: ['127.0.0.1', 'hooks.test'] });
  });
  afterAll(async () => {
    await server.close();
    await receiver.close();
  });

  test('when a name resolved to a public address at creation resolves to loopback at delivery, then the delivery is refused and nothing connects; an allowed name connects to the address it resolves to', async () => {
    const secret = newSecret();
    const executor = new BatchExecutor(server.running.store, {
      maxOperations: 100,
      hashPolicy: hashPolicyOf(server.config),
      webhookAllowHosts: server.config.webhookAllowHosts,
      lookupHost: async (host) => (host === 'rebind.test' ? ['93.184.216.34'] : Promise.reject(Object.assign(new Error('not found'), { code: 'ENOTFOUND' }))),
    });
    const made = await executor.execute(
      `<flexibee-batch id="wj-1">
        <subscription><id>wj-rebind</id><url>https://rebind.test:${receiver.port}/rebind</url><secret>${secret}</secret><excludeOwn>false</excludeOwn></subscription>
        <subscription><id>wj-named</id><url>http://hooks.test:${receiver.port}/named</url><secret>${secret}</secret><excludeOwn>false</excludeOwn></subscription>
      </flexibee-batch>`,
      { kind: 'cli', name: 'cli', scope: ROOT_GROUP },
    );
    expect(statuses(made.xml)).toEqual(['CREATED', 'CREATED']);
    await h.batch('wj-2', '<user><username>wj.u1</username></user>');
    const looked: string[] = [];
    const job = new WebhookDeliveries({
      store: server.running.store,
      config: server.config,
      logger: createLogger('silent'),
      lookup: (host, callback) => {
        looked.push(host);
        callback(null, [{ address: '127.0.0.1', family: 4 }]);
      },
    });
    const round = await job.deliverDue(Date.now(), new AbortController().signal);
    expect(receiver.at('/rebind')).toHaveLength(0);
    const [named] = receiver.at('/named');
    expect(userIds([verified(named, secret) && named])).toEqual(['wj.u1']);
    expect(named.headers.host).toBe(`hooks.test:${receiver.port}`);
    expect(looked.sort()).toEqual(['hooks.test', 'rebind.test']);
    const rebind = await h.listed('wj-rebind');
    expect(rebind).toMatchObject({
      state: 'active',
      pending: 1,
      lastDelivery: { status: null },
      lastError: { message: 'refused: rebind.test resolves to 127.0.0.1, a loopback address (a webhook may not reach loopback, private, link-local or unspecified addresses)' },
    });
    // The first retry waits the first back-off step (5 s by default); the round says when.
    expect(round.nextRetryAt).toBe(Date.parse(rebind.nextAttemptAt ?? ''));
    // Retention keeps what the refused subscription has not had; once it is switched off, it no longer holds anything back.
    const last = await server.running.store.lastEventSeq();
    expect(await job.retainableUpTo()).toBeLessThan(last);
    await h.batch('wj-3', h.subscription('wj-rebind', '<active>false</active>'));
    expect(await job.retainableUpTo()).toBe(last);
  });
});
