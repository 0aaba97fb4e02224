import { issueCertificate } from '../../src/pki/dev-pki';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { startTestServer, statuses, type TestServer } from '../support/server';

interface FeedEvent {
  seq: number;
  id: string;
  type: string;
  time: string;
  group: string;
  entity: { type: string; id: string };
  batchId: string | null;
  actor: { credential: string; user: string | null };
  changes?: Record<string, unknown>;
  [more: string]: unknown;
}

interface Feed {
  events: FeedEvent[];
  next: number;
}

/**
 * The event feed (SPEC §10.1, issue 12 point 1): every committed change is an event in the
 * transaction of the change, numbered in commit order, readable in scope from any position.
 */
describe('events and GET /events.json (SPEC §10.1)', () => {
  let server: TestServer;
  let partner: { cert: string; key: string };

  beforeAll(async () => {
    server = await startTestServer();
    const cert = issueCertificate({ commonName: 'events partner', kind: 'client' });
    partner = { cert: cert.certPem, key: cert.keyPem };
    const groups = await server.batch(
      `<flexibee-batch id="ev-groups"><licenseGroup><id>ev_a</id><name>A</name></licenseGroup><licenseGroup><id>ev_b</id><name>B</name></licenseGroup></flexibee-batch>`,
    );
    expect(statuses(groups.body)).toEqual(['CREATED', 'CREATED']);
    await server.running.store.addFingerprint({ fingerprint: fingerprintOfCertificate(partner.cert), scope: 'ev_a', label: 'partner a' });
  });
  afterAll(() => server.close());

  const feed = async (query: string, client?: { cert: string; key: string }): Promise<Feed> => {
    const res = await server.request('GET', `/events.json${query}`, client ? { client } : {});
    expect({ status: res.status, type: res.headers['content-type'] }).toEqual({ status: 200, type: 'application/json; charset=utf-8' });
    return JSON.parse(res.body) as Feed;
  };
  const allAfter = async (after: number): Promise<FeedEvent[]> => (await feed(`?after=${after}&limit=1000`)).events;

  test('when a batch creates, updates, blocks and grants, then each change is an event with its changes, in order, and no password value or hash', async () => {
    const start = (await feed('?limit=1')).next;
    const before = await allAfter(0);
    const last = before.length ? before[before.length - 1].seq : 0;
    const res = await server.batch(`<flexibee-batch id="ev-1">
      <user><username>ev.anna</username><password>first secret password</password><email>anna@ev.example</email></user>
      <company><id>ev_co</id><name>Ev s.r.o.</name><adminUser>ev.anna</adminUser></company>
      <user><username>ev.anna</username><email>anna2@ev.example</email><blocked message="trial over">true</blocked></user>
    </flexibee-batch>`);
    expect(statuses(res.body)).toEqual(['CREATED', 'CREATED', 'UPDATED']);
    const events = await allAfter(last);
    expect(events.map((e) => e.type)).toEqual(['USER_CREATED', 'COMPANY_CREATED', 'ACCESS_GRANTED', 'USER_UPDATED', 'USER_BLOCKED']);
    expect(start).toBeLessThanOrEqual(last);
    for (let i = 1; i < events.length; i++) expect(events[i].seq).toBeGreaterThan(events[i - 1].seq);
    expect(events[0]).toMatchObject({ entity: { type: 'USER', id: 'ev.anna' }, group: 'root', batchId: 'ev-1', values: { password: 'set', email: 'anna@ev.example' } });
    expect(Object.keys(events[0])).toEqual(['seq', 'id', 'type', 'time', 'group', 'batchId', 'actor', 'entity', 'values']);
    expect(events[0].id).toMatch(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(events[0].actor).toEqual({ credential: expect.stringMatching(/^certificate [0-9A-F:]{59}$/), user: null });
    expect(events[2]).toMatchObject({ entity: { type: 'ACCESS_LIST', id: 'ev.anna@ev_co' }, user: 'ev.anna', company: 'ev_co', role: 'ADMIN' });
    expect(events[3].changes).toEqual({ email: { from: 'anna@ev.example', to: 'anna2@ev.example' } });
    expect(events[4].values).toEqual({ blockMessage: 'trial over' });
    const text = JSON.stringify(events);
    expect(text).not.toContain('first secret password');
    expect(text).not.toMatch(/sha256:|pbkdf2:/);
  });

  test('when a batch is a dry run, rolled back as atomic, or all its operations fail or are skipped, then it makes no event', async () => {
    const { next } = await feed('?after=0&limit=1000');
    const dry = await server.batch('<flexibee-batch id="ev-dry" dry-run="true"><user><username>ev.dry</username></user></flexibee-batch>');
    expect(statuses(dry.body)).toEqual(['CREATED']);
    const atomic = await server.batch('<flexibee-batch id="ev-atomic" atomic="true"><user><username>ev.atomic</username></user><access user="nobody.here">ev_co</access></flexibee-batch>');
    expect(statuses(atomic.body)).toEqual(['SKIPPED', 'FAILED']);
    const failed = await server.batch('<flexibee-batch id="ev-failed"><access user="nobody.here">ev_co</access><company><id>ev_co</id><name>Ev s.r.o.</name></company></flexibee-batch>');
    expect(statuses(failed.body)).toEqual(['FAILED', 'SKIPPED']);
    expect(await allAfter(next)).toEqual([]);
    expect((await feed(`?after=${next}`)).next).toBe(next);
  });

  test('when a principal is scoped to a group, then it reads only the events of its subtree, and next skips what it cannot see', async () => {
    const { next: start } = await feed('?after=0&limit=1000');
    const res = await server.batch(`<flexibee-batch id="ev-scoped">
      <user><username>ev.in.a</username><licenseGroup>ev_a</licenseGroup></user>
      <user><username>ev.in.b</username><licenseGroup>ev_b</licenseGroup></user>
      <company><id>ev_co_b</id><name>B s.r.o.</name><adminUser>ev.in.b</adminUser><licenseGroup>ev_b</licenseGroup></company>
      <access user="ev.in.a" role="UCETNI">ev_co_b</access>
    </flexibee-batch>`);
    expect(statuses(res.body)).toEqual(['CREATED', 'CREATED', 'CREATED', 'CREATED']);
    const seen = await feed(`?after=${start}`, partner);
    expect(seen.events.map((e) => [e.type, e.entity.id])).toEqual([['USER_CREATED', 'ev.in.a']]);
    // The grant joins A's user to B's company: A may not learn of B's company, so it does not see it.
    expect((await feed(`?after=${start}&limit=1000`)).events.map((e) => e.type)).toEqual(['USER_CREATED', 'USER_CREATED', 'COMPANY_CREATED', 'ACCESS_GRANTED', 'ACCESS_GRANTED']);
    expect(seen.next).toBe((await feed(`?after=${start}&limit=1000`)).next);
  });

  test('when the feed is read page by page, then the pages join up without gaps or repeats', async () => {
    const all = await allAfter(0);
    const walked: FeedEvent[] = [];
    let after = 0;
    for (;;) {
      const page = await feed(`?after=${after}&limit=2`);
      walked.push(...page.events);
      if (page.events.length < 2) break;
      after = page.next;
    }
    expect(walked.map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  });

  test.each([
    ['?after=-1', 'after must be a whole number from 0'],
    ['?after=x', 'after must be a whole number from 0'],
    ['?limit=0', 'limit must be a whole number from 1 to 1000'],
    ['?limit=1001', 'limit must be a whole number from 1 to 1000'],
    ['?after=1&after=2', 'after must be a whole number'],
  ])('when the query is %s, then the answer is 400 naming the parameter', async (query, message) => {
    const res = await server.request('GET', `/events.json${query}`);
    expect(res.status).toBe(400);
    expect(res.body).toContain(message);
  });

  test('when no credential is sent, then the feed answers 401', async () => {
    expect((await server.request('GET', '/events.json', { client: null })).status).toBe(401);
  });
});
