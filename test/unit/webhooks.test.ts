import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { parseBatch } from '../../src/batch/parse';
import { planBatch, snapshotRequest, type Plan, type Snapshot } from '../../src/batch/plan';
import { resolveWebhookHosts } from '../../src/batch/webhook-hosts';
import { rootGroup } from '../../src/domain/groups';
import type { Principal } from '../../src/domain/principals';
import {
  canonicalPatterns,
  deliveryBody,
  readEventPatterns,
  readSecret,
  readWebhookUrl,
  signatures,
  typesOf,
  webhookTargetProblem,
  type SubscriptionRecord,
  type WebhookRules,
} from '../../src/domain/webhooks';
import { retryAfterMs } from '../../src/tasks/webhook-post';
import { snapshot, user } from '../support/snapshots';

const secretOf = (bytes: number): string => `whsec_${randomBytes(bytes).toString('base64')}`;

describe('Standard Webhooks signatures (SPEC §10.2)', () => {
  test('when a delivery is signed, then the standardwebhooks library, an independent implementation, verifies it and finds the same signature', () => {
    const secret = secretOf(24);
    const body = deliveryBody('2026-11-26T10:00:00.000Z', ['{"seq":1,"type":"USER_CREATED"}', '{"seq":2,"type":"USER_UPDATED"}']);
    expect(JSON.parse(body)).toEqual({ type: 'flexi.events', timestamp: '2026-11-26T10:00:00.000Z', data: { events: [{ seq: 1, type: 'USER_CREATED' }, { seq: 2, type: 'USER_UPDATED' }] } });
    const id = 'msg_01JDX6Q4R8Z5S2M7K3N9P0B1C4';
    const timestamp = Math.floor(Date.now() / 1000);
    const header = signatures([secret], id, timestamp, body);
    expect(header).toBe(new Webhook(secret).sign(id, new Date(timestamp * 1000), body));
    expect(new Webhook(secret).verify(body, { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': header })).toEqual(JSON.parse(body));
  });

  test('when two secrets sign, then the header holds both signatures space-separated, and either secret verifies; a third does not', () => {
    const [current, previous, other] = [secretOf(32), secretOf(24), secretOf(24)];
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = { 'webhook-id': 'msg_x', 'webhook-timestamp': String(timestamp), 'webhook-signature': signatures([current, previous], 'msg_x', timestamp, '{}') };
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(new Webhook(current).verify('{}', headers)).toEqual({});
    expect(new Webhook(previous).verify('{}', headers)).toEqual({});
    expect(() => new Webhook(other).verify('{}', headers)).toThrow('No matching signature found');
  });
});

describe('the fields of <subscription> (SPEC §10.2)', () => {
  test('when <events> names types and prefixes, then they are kept unique and sorted; none or * is every type', () => {
    expect(readEventPatterns('USER_* ACCESS_GRANTED USER_*')).toEqual({ value: ['ACCESS_GRANTED', 'USER_*'] });
    expect(readEventPatterns('  ')).toEqual({ value: ['*'] });
    expect(readEventPatterns('USER_CREATED *')).toEqual({ value: ['*'] });
    expect(readEventPatterns('L*')).toEqual({ value: ['L*'] });
    expect(canonicalPatterns([])).toEqual(['*']);
    expect(typesOf(['*'])).toBeUndefined();
    expect(typesOf(['ACCESS_GRANTED', 'LICENSE_GROUP_*'])).toEqual(['ACCESS_GRANTED', 'LICENSE_GROUP_CREATED', 'LICENSE_GROUP_UPDATED', 'LICENSE_GROUP_DELETED']);
    expect(readEventPatterns(Array.from({ length: 65 }, () => 'USER_CREATED').join(' '))).toEqual({ error: '<events> may name at most 64 event types or patterns' });
  });

  test('when a secret is given, then whsec_ and 24 to 64 bytes of canonical base64 are accepted and kept padded, and no message shows it', () => {
    const key = randomBytes(25);
    const padded = `whsec_${key.toString('base64')}`;
    expect(padded.endsWith('=')).toBe(true);
    expect(readSecret(padded)).toEqual({ value: padded });
    expect(readSecret(padded.replace(/=+$/, ''))).toEqual({ value: padded });
    expect(readSecret(secretOf(64))).toHaveProperty('value');
    // 25 zero bytes are A×34 and '=='; a B in the last place sets bits that decoding drops: the same key, written another way.
    const nonCanonical = `whsec_${'A'.repeat(33)}B==`;
    for (const bad of [secretOf(23), secretOf(65), 'whsec_', nonCanonical, `WHSEC_${randomBytes(24).toString('base64')}`, `whsec_${randomBytes(24).toString('base64url')}-_`]) {
      const reading = readSecret(bad);
      expect(reading).toHaveProperty('error');
      if (bad.length > 12) expect(JSON.stringify(reading)).not.toContain(bad.slice(6, 20));
    }
  });

  test('when a URL is given, then it is kept as WHATWG writes it, and one with credentials, a fragment or another scheme is refused', () => {
    expect(readWebhookUrl('HTTPS://Hooks.Example.COM:443/a/../b?x=1')).toEqual({ value: 'https://hooks.example.com/b?x=1' });
    expect(readWebhookUrl('https://hooks.example.com')).toEqual({ value: 'https://hooks.example.com/' });
    expect(readWebhookUrl('mailto:a@b.c')).toHaveProperty('error');
    expect(readWebhookUrl(`https://h.example/${'a'.repeat(2048)}`)).toEqual({ error: '<url> is longer than 2048 characters' });
  });

  test('when a target is judged, then an allowed host may be anything and http://, and any other must be https:// to a host whose every address is public', () => {
    const rules: WebhookRules = {
      allowHosts: ['127.0.0.1', '[::1]', 'Receiver.Test'],
      resolved: new Map([
        ['public.example', { addresses: ['93.184.216.34'] }],
        ['split.example', { addresses: ['93.184.216.34', '10.0.0.8'] }],
        ['empty.example', { addresses: [] }],
        ['down.example', { error: 'EAI_AGAIN' }],
      ]),
    };
    expect(webhookTargetProblem('http://127.0.0.1:8080/x', rules)).toBeUndefined();
    expect(webhookTargetProblem('http://[0:0::1]/x', rules)).toBeUndefined();
    expect(webhookTargetProblem('http://receiver.test/x', rules)).toBeUndefined();
    expect(webhookTargetProblem('https://public.example/x', rules)).toBeUndefined();
    expect(webhookTargetProblem('http://public.example/x', rules)).toMatch(/^<url> must be an https:\/\/ URL/);
    expect(webhookTargetProblem('https://split.example/x', rules)).toMatch(/split.example resolves to 10.0.0.8, a private address/);
    expect(webhookTargetProblem('https://empty.example/x', rules)).toBe('the host empty.example of the webhook URL resolves to no address');
    expect(webhookTargetProblem('https://down.example/x', rules)).toBe('the host down.example of the webhook URL could not be resolved (EAI_AGAIN)');
    expect(webhookTargetProblem('https://unasked.example/x', rules)).toBe('the host unasked.example of the webhook URL could not be resolved');
    expect(webhookTargetProblem('https://127.0.0.2/x', rules)).toMatch(/127.0.0.2 is a loopback address/);
  });

  test('when a Retry-After is read, then seconds and HTTP dates give the wait, bounded by a day; anything else gives none', () => {
    const now = Date.parse('2026-11-26T10:00:00Z');
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs(['3', '9'], now)).toBe(3000);
    expect(retryAfterMs('Thu, 26 Nov 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Thu, 26 Nov 2026 09:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('9999999', now)).toBe(86_400_000);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(undefined, now)).toBeUndefined();
  });
});

describe('planning <subscription> (SPEC §10.2)', () => {
  const CERT: Principal = { kind: 'certificate', name: 'AB:CD', scope: 'root' };
  const RULES: WebhookRules = { allowHosts: ['127.0.0.1'], resolved: new Map() };
  const SECRET = secretOf(24);
  const stored = (over: Partial<SubscriptionRecord> = {}): SubscriptionRecord => ({
    id: 'crm',
    url: 'http://127.0.0.1/hook',
    events: ['*'],
    secret: SECRET,
    excludeOwn: true,
    licenseGroup: 'root',
    state: 'active',
    owner: { credential: 'certificate 11:22', user: null },
    ...over,
  });
  const plan = (ops: string, snap: Snapshot, principal = CERT): Plan =>
    planBatch(parseBatch(`<flexibee-batch id="t">${ops}</flexibee-batch>`, { maxOperations: 100 }), snap, { principal, passwordMatches: () => false, webhooks: RULES });
  const op = (fields: string, action = ''): string => `<subscription${action ? ` action="${action}"` : ''}><id>crm</id>${fields}</subscription>`;

  test('when a batch names subscriptions, then the snapshot request asks for them and their groups', () => {
    const doc = parseBatch(`<flexibee-batch id="t">${op('<licenseGroup>partner_a</licenseGroup>')}<subscription><id>other</id></subscription></flexibee-batch>`, { maxOperations: 10 });
    expect(snapshotRequest(doc, CERT)).toMatchObject({ subscriptionIds: ['crm', 'other'], groupIds: ['root', 'partner_a'] });
  });

  test('when a subscription is created, then its owner is the credential (or the acting user), it is active with every event and excludeOwn, and it is written as new', () => {
    const p = plan(op(`<url>http://127.0.0.1/hook</url><secret>${SECRET}</secret>`), snapshot());
    expect(p.results[0]).toMatchObject({ type: 'SUBSCRIPTION', id: 'crm', status: 'CREATED' });
    expect(p.changes.subscriptions).toEqual([{ subscription: stored({ owner: { credential: 'certificate AB:CD', user: null } }), created: true, restarted: false, stateChanged: false, filterChanged: false }]);
    expect(p.events).toEqual([]);
    const boss = user('boss', { permissions: { ...user('x').permissions, manageAll: true } });
    const asBoss = plan(op(`<url>http://127.0.0.1/hook</url><secret>${SECRET}</secret>`), snapshot({ users: [boss] }), { ...CERT, actingUser: 'Boss' });
    expect(asBoss.changes.subscriptions[0].subscription.owner).toEqual({ credential: 'certificate AB:CD', user: 'Boss' });
  });

  test('when the secret changes twice in one batch, then the stored secret is the one that keeps signing for the overlap', () => {
    const [second, third] = [secretOf(24), secretOf(24)];
    const p = plan(op(`<secret>${second}</secret>`) + op(`<secret>${third}</secret>`), snapshot({ subscriptions: [stored()] }));
    expect(p.results.map((r) => r.status)).toEqual(['UPDATED', 'UPDATED']);
    expect(p.changes.subscriptions).toEqual([{ subscription: stored({ secret: third }), created: false, rotatedFrom: SECRET, restarted: false, stateChanged: false, filterChanged: false }]);
  });

  test('when a subscription is suspended or inactive, then <active>true</active> resumes it; from inactive it starts over after the batch, and a changed filter drops the delivery being retried', () => {
    const resumed = plan(op('<active>true</active>'), snapshot({ subscriptions: [stored({ state: 'suspended' })] }));
    expect(resumed.results[0]).toMatchObject({ status: 'UPDATED', message: 'resumed' });
    expect(resumed.changes.subscriptions[0]).toMatchObject({ restarted: false, stateChanged: true, filterChanged: false });
    const restarted = plan(op('<active>true</active>'), snapshot({ subscriptions: [stored({ state: 'inactive' })] }));
    expect(restarted.changes.subscriptions[0]).toMatchObject({ restarted: true, stateChanged: true });
    const narrowed = plan(op('<events>USER_*</events>'), snapshot({ subscriptions: [stored({ state: 'suspended' })] }));
    expect(narrowed.results[0]).toMatchObject({ status: 'UPDATED' });
    expect(narrowed.changes.subscriptions[0]).toMatchObject({ subscription: { state: 'suspended', events: ['USER_*'] }, stateChanged: false, filterChanged: true });
  });

  test('when a subscription is deleted and created again in one batch, then the old row goes and a new one is written, with a new owner', () => {
    const p = plan(op('', 'delete') + op(`<url>http://127.0.0.1/other</url><secret>${SECRET}</secret>`), snapshot({ subscriptions: [stored()] }));
    expect(p.results.map((r) => r.status)).toEqual(['DELETED', 'CREATED']);
    expect(p.changes.deletedSubscriptions).toEqual(['crm']);
    expect(p.changes.subscriptions).toEqual([
      { subscription: stored({ url: 'http://127.0.0.1/other', owner: { credential: 'certificate AB:CD', user: null } }), created: true, restarted: false, stateChanged: false, filterChanged: false },
    ]);
  });

  test('when an unchanged URL is sent again, then it is not judged again (its host may not resolve right now), and the operation is SKIPPED', () => {
    const p = plan(op(`<url>https://gone.example/hook</url><secret>${SECRET}</secret>`), snapshot({ subscriptions: [stored({ url: 'https://gone.example/hook' })] }));
    expect(p.results[0]).toMatchObject({ status: 'SKIPPED' });
    const moved = plan(op('<url>https://gone.example/other</url>'), snapshot({ subscriptions: [stored({ url: 'https://gone.example/hook' })] }));
    expect(moved.results[0]).toMatchObject({ status: 'FAILED', message: 'the host gone.example of the webhook URL could not be resolved' });
  });

  test('when a group with a subscription is deleted, then it is not empty, unless the batch moved the subscription away first', () => {
    const groups = [rootGroup(), { ...rootGroup(), id: 'tenant', name: 'T', parentId: 'root' }];
    const contents = [{ id: 'tenant', groups: 0, users: 0, companies: 0, certificates: 0, dateActions: 0, subscriptions: 1 }];
    const snap = snapshot({ groups, groupContents: contents, subscriptions: [stored({ licenseGroup: 'tenant' })] });
    const del = '<licenseGroup action="delete"><id>tenant</id></licenseGroup>';
    expect(plan(del, snap).results[0]).toMatchObject({ status: 'FAILED', message: 'license group tenant is not empty: 1 subscription' });
    expect(plan(op('<licenseGroup>root</licenseGroup>') + del, snap).results.map((r) => r.status)).toEqual(['UPDATED', 'DELETED']);
  });
});

describe('resolving webhook hosts before planning (SPEC §10.2)', () => {
  test('when a batch names URLs, then only host names that are neither allowed nor localhost are looked up, each once, and a failure or a silence is the answer', async () => {
    const asked: string[] = [];
    const doc = parseBatch(
      `<flexibee-batch id="t">${[
        'https://a.example/1',
        'https://A.example./2',
        'https://10.0.0.1/',
        'https://localhost/',
        'http://allowed.test/',
        'https://slow.example/',
        'https://broken.example/',
      ]
        .map((url, i) => `<subscription><id>s${i}</id><url>${url}</url></subscription>`)
        .join('')}<subscription action="delete"><id>x</id><url>https://deleted.example/</url></subscription></flexibee-batch>`,
      { maxOperations: 100 },
    );
    const resolved = await resolveWebhookHosts(
      doc,
      ['allowed.test'],
      async (host) => {
        asked.push(host);
        if (host === 'slow.example') return new Promise<string[]>(() => undefined);
        if (host === 'broken.example') throw Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
        return ['93.184.216.34'];
      },
      50,
    );
    expect(asked.sort()).toEqual(['a.example', 'broken.example', 'slow.example']);
    expect(Object.fromEntries(resolved)).toEqual({
      'a.example': { addresses: ['93.184.216.34'] },
      'slow.example': { error: 'no answer within 0.05 s' },
      'broken.example': { error: 'EAI_AGAIN' },
    });
  });
});
