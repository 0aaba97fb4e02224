import { BatchExecutor } from '../../src/batch/execute';
import type { HostLookup } from '../../src/batch/webhook-hosts';
import { hashPolicyOf } from '../../src/config';
import { ROOT_GROUP } from '../../src/domain/principals';
import type { SubscriptionView } from '../../src/domain/webhooks';
import { issueCertificate } from '../../src/pki/dev-pki';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { entries, startTestServer, statuses, type TestServer } from '../support/server';
import { newSecret, WebhookReceiver } from '../support/webhook-receiver';
import { assertValidXml } from '../support/xmllint';

const AS = 'X-FlexiBee-Authorization';

/**
 * `<subscription>` and GET /subscriptions.json (SPEC §10.2, issue 12 point 2): the batch entity —
 * its rules, idempotency, scope and permissions, and where its URL may lead — and the listing.
 * Deliveries are webhooks-delivery.test.ts.
 */
describe('webhook subscriptions (SPEC §10.2)', () => {
  let server: TestServer;
  let receiver: WebhookReceiver;
  let partner: { cert: string; key: string };
  const secret = newSecret();

  const subscription = (id: string, fields: string, action = ''): string => `<subscription${action ? ` action="${action}"` : ''}><id>${id}</id>${fields}</subscription>`;
  const batch = (id: string, body: string, attributes = ''): string => `<flexibee-batch id="${id}"${attributes}>${body}</flexibee-batch>`;
  const listing = async (client?: { cert: string; key: string }, headers?: Record<string, string>): Promise<SubscriptionView[]> => {
    const res = await server.request('GET', '/subscriptions.json', { ...(client ? { client } : {}), ...(headers ? { headers } : {}) });
    expect({ status: res.status, type: res.headers['content-type'] }).toEqual({ status: 200, type: 'application/json; charset=utf-8' });
    return (JSON.parse(res.body) as { subscriptions: SubscriptionView[] }).subscriptions;
  };
  const one = async (id: string): Promise<SubscriptionView | undefined> => (await listing()).find((s) => s.id === id);

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    server = await startTestServer({ webhookAllowHosts: ['127.0.0.1'] });
    const cert = issueCertificate({ commonName: 'webhook partner', kind: 'client' });
    partner = { cert: cert.certPem, key: cert.keyPem };
    const setup = await server.batch(
      batch(
        'ws-setup',
        `<licenseGroup><id>ws_a</id><name>A</name></licenseGroup><licenseGroup><id>ws_a1</id><name>A1</name><parent>ws_a</parent></licenseGroup>
         <licenseGroup><id>ws_b</id><name>B</name></licenseGroup>
         <user><username>ws.boss</username><permissions><manageAll>true</manageAll></permissions></user>
         <user><username>ws.clerk</username><permissions><createUser>true</createUser></permissions></user>`,
      ),
    );
    expect(statuses(setup.body)).toEqual(['CREATED', 'CREATED', 'CREATED', 'CREATED', 'CREATED']);
    await server.running.store.addFingerprint({ fingerprint: fingerprintOfCertificate(partner.cert), scope: 'ws_a', label: 'webhook partner' });
  });
  afterAll(async () => {
    await server.close();
    await receiver.close();
  });

  test('when a subscription is created, sent again and changed, then it answers CREATED, SKIPPED and UPDATED, and the listing shows it without its secret', async () => {
    const create = subscription('ws-crm', `<url>${receiver.url('/crm')}</url><events>USER_* ACCESS_GRANTED</events><secret>${secret}</secret>`);
    const first = await server.batch(batch('ws-1', create));
    expect(entries(first.body)).toEqual([{ type: 'SUBSCRIPTION', action: 'CREATE_UPDATE', id: 'ws-crm', status: 'CREATED' }]);
    expect(statuses((await server.batch(batch('ws-1', create))).body)).toEqual(['SKIPPED']);
    // The same patterns in another order, repeated, are the same subscription.
    const reordered = subscription('ws-crm', `<events> ACCESS_GRANTED  USER_*\n USER_* </events><secret>${secret}</secret><excludeOwn>true</excludeOwn><active>true</active>`);
    expect(statuses((await server.batch(batch('ws-2', reordered))).body)).toEqual(['SKIPPED']);
    const listed = await one('ws-crm');
    expect(listed).toEqual({
      id: 'ws-crm',
      url: receiver.url('/crm'),
      events: ['ACCESS_GRANTED', 'USER_*'],
      licenseGroup: ROOT_GROUP,
      owner: { credential: expect.stringMatching(/^certificate [0-9A-F:]{59}$/), user: null },
      state: 'active',
      excludeOwn: true,
      pending: 0,
      lastDelivery: null,
      lastError: null,
      nextAttemptAt: null,
      previousSecretUntil: null,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    const changed = await server.batch(batch('ws-3', subscription('ws-crm', '<events></events><excludeOwn>false</excludeOwn>')));
    expect(statuses(changed.body)).toEqual(['UPDATED']);
    expect(await one('ws-crm')).toMatchObject({ events: ['*'], excludeOwn: false });
    const res = await server.request('GET', '/subscriptions.json');
    expect(res.body).not.toContain(secret);
    expect(res.body).not.toContain(secret.slice(6, 30));
  });

  test('when a subscription is sent wrong, then that operation is FAILED with a message naming the problem and never showing the secret', async () => {
    const url = `<url>${receiver.url('/x')}</url>`;
    const cases: Array<[string, RegExp]> = [
      [subscription('Bad Id', `${url}<secret>${secret}</secret>`), /^subscription id 'Bad Id' is not valid: subscription ids are 1–64 characters of a–z, 0–9, _ and -$/],
      [`<subscription>${url}</subscription>`, /^a <subscription> needs an <id>$/],
      [subscription('ws-nourl', `<secret>${secret}</secret>`), /^subscription 'ws-nourl' does not exist, and a subscription cannot be created without a <url>$/],
      [subscription('ws-nosecret', url), /^a subscription cannot be created without a <secret>$/],
      [subscription('ws-ftp', `<url>ftp://files.example.com/</url><secret>${secret}</secret>`), /^<url> must be an https:\/\/ URL, not 'ftp:\/\/files.example.com\/'$/],
      [subscription('ws-rel', `<url>/hooks</url><secret>${secret}</secret>`), /^<url> must be an absolute https:\/\/ URL, not '\/hooks'$/],
      [subscription('ws-cred', `<url>https://me:pw@hooks.example.com/</url><secret>${secret}</secret>`), /^<url> must not hold a user name or password/],
      [subscription('ws-frag', `<url>https://hooks.example.com/#x</url><secret>${secret}</secret>`), /^<url> must not have a #fragment/],
      [subscription('ws-http', `<url>http://93.184.216.34/hook</url><secret>${secret}</secret>`), /^<url> must be an https:\/\/ URL \(http:\/\/ only for the hosts of --webhook-allow-hosts\)/],
      [subscription('ws-type', `${url}<events>USER_CREATED USER_MADE</events><secret>${secret}</secret>`), /^unknown event type 'USER_MADE'; expected USER_CREATED, .*TASK_FAILED, or a prefix followed by \* such as USER_\*$/],
      [subscription('ws-case', `${url}<events>user_*</events><secret>${secret}</secret>`), /^event pattern 'user_\*' matches no event type/],
      [subscription('ws-none', `${url}<events>PAYMENT_*</events><secret>${secret}</secret>`), /^event pattern 'PAYMENT_\*' matches no event type/],
      [subscription('ws-star', `${url}<events>U*SER</events><secret>${secret}</secret>`), /^event pattern 'U\*SER' is not valid: '\*' may only end a pattern, as in USER_\*$/],
      [subscription('ws-form', `${url}<secret>${secret.slice(6)}</secret>`), /^<secret> must be whsec_ followed by the base64 of 24 to 64 random bytes/],
      [subscription('ws-short', `${url}<secret>whsec_${Buffer.alloc(16, 7).toString('base64')}</secret>`), /^<secret> must be whsec_ .*; this one holds 16 bytes$/],
      [subscription('ws-long', `${url}<secret>whsec_${Buffer.alloc(65, 7).toString('base64')}</secret>`), /; this one holds 65 bytes$/],
      [subscription('ws-b64', `${url}<secret>whsec_${'%'.repeat(32)}</secret>`), /^<secret> must be whsec_/],
      [subscription('ws-bool', `${url}<secret>${secret}</secret><excludeOwn>yes</excludeOwn>`), /^<excludeOwn> must be true or false, not 'yes'$/],
      [subscription('ws-act', `${url}<secret>${secret}</secret><active>on</active>`), /^<active> must be true or false, not 'on'$/],
      [subscription('ws-group', `${url}<secret>${secret}</secret><licenseGroup>ws_nowhere</licenseGroup>`), /^license group 'ws_nowhere' does not exist$/],
      [subscription('ws-elem', `${url}<secret>${secret}</secret><name>x</name>`), /^unknown element <name> in <subscription>; expected <id>, <url>, <events>, <secret>, <excludeOwn>, <licenseGroup>, <active>$/],
      [subscription('ws-twice', `${url}${url}<secret>${secret}</secret>`), /^<url> is given twice in <subscription>$/],
    ];
    const res = await server.batch(batch('ws-wrong', cases.map(([op]) => op).join('')));
    const got = entries(res.body);
    expect(got.map((e) => e.status)).toEqual(cases.map(() => 'FAILED'));
    got.forEach((e, i) => expect({ i, message: e.message }).toEqual({ i, message: expect.stringMatching(cases[i][1]) }));
    expect(res.body).not.toContain(secret.slice(6, 30));
    expect(server.logs.join('')).not.toContain(secret.slice(6, 30));
  });

  test.each([
    ['https://127.0.0.2/hook', '127.0.0.2 is a loopback address'],
    ['https://2130706434/hook', '127.0.0.2 is a loopback address'],
    ['https://0x7f.0.0.3/hook', '127.0.0.3 is a loopback address'],
    ['https://10.0.0.1/hook', '10.0.0.1 is a private address'],
    ['https://192.168.0.10:8443/hook', '192.168.0.10 is a private address'],
    ['https://172.20.0.1/hook', '172.20.0.1 is a private address'],
    ['https://100.64.1.1/hook', '100.64.1.1 is a private (carrier-grade NAT, 100.64.0.0/10) address'],
    ['https://169.254.169.254/latest/meta-data', '169.254.169.254 is a link-local address'],
    ['https://0.0.0.0/hook', '0.0.0.0 is the unspecified address'],
    ['https://[::1]/hook', '::1 is a loopback address'],
    ['https://[::]/hook', ':: is the unspecified address'],
    ['https://[::ffff:127.0.0.1]/hook', '::ffff:7f00:1 is a loopback address (IPv4-mapped 127.0.0.1)'],
    ['https://[::ffff:10.1.1.1]/hook', '::ffff:a01:101 is a private address (IPv4-mapped 10.1.1.1)'],
    ['https://[::127.0.0.1]/hook', '::7f00:1 is a loopback address (IPv4-compatible 127.0.0.1)'],
    ['https://[fe80::1]/hook', 'fe80::1 is a link-local address'],
    ['https://[fc00::1]/hook', 'fc00::1 is a private (unique local) address'],
    ['https://[fd00:ec2::254]/hook', 'fd00:ec2::254 is a private (unique local) address'],
    ['https://localhost/hook', 'localhost is a loopback name'],
    ['https://hooks.localhost/hook', 'hooks.localhost is a loopback name'],
  ])('when a subscription URL is %s, then it is FAILED naming the rule: %s', async (url, why) => {
    const res = await server.batch(batch('ws-ssrf', subscription('ws-ssrf', `<url>${url}</url><secret>${secret}</secret>`)));
    expect(entries(res.body)).toEqual([
      expect.objectContaining({
        status: 'FAILED',
        message: `the webhook URL ${new URL(url).href} is refused: ${why} (a webhook may not reach loopback, private, link-local or unspecified addresses)`,
      }),
    ]);
  });

  test('when a subscription URL host is a name, then it is FAILED when it resolves to a refused address or not at all, and created when every address it resolves to is public', async () => {
    const names: Record<string, string[]> = {
      'internal.example': ['10.1.2.3'],
      'mixed.example': ['93.184.216.34', 'fd00::1'],
      'meta.example': ['169.254.169.254'],
      'public.example': ['93.184.216.34', '2606:2800:220:1::1'],
    };
    const asked: string[] = [];
    const lookupHost: HostLookup = async (host) => {
      asked.push(host);
      const found = names[host];
      if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return found;
    };
    // The server's own executor over the server's store: only the resolver is the test's.
    const executor = new BatchExecutor(server.running.store, { maxOperations: 100, hashPolicy: hashPolicyOf(server.config), webhookAllowHosts: ['127.0.0.1'], lookupHost });
    const op = (id: string, url: string): string => subscription(id, `<url>${url}</url><secret>${secret}</secret>`);
    const outcome = await executor.execute(
      batch(
        'ws-dns',
        op('ws-dns-1', 'https://internal.example/hook') +
          op('ws-dns-2', 'https://MIXED.example./hook') +
          op('ws-dns-3', 'https://meta.example/') +
          op('ws-dns-4', 'https://nowhere.example/hook') +
          op('ws-dns-5', 'https://public.example/hook') +
          op('ws-dns-6', receiver.url('/dns')),
      ),
      { kind: 'cli', name: 'cli', scope: ROOT_GROUP },
    );
    assertValidXml(outcome.xml, 'batch-result');
    const rule = '(a webhook may not reach loopback, private, link-local or unspecified addresses)';
    expect(entries(outcome.xml).map((e) => [e.status, e.message])).toEqual([
      ['FAILED', `the webhook URL https://internal.example/hook is refused: internal.example resolves to 10.1.2.3, a private address ${rule}`],
      ['FAILED', `the webhook URL https://mixed.example./hook is refused: mixed.example resolves to fd00::1, a private (unique local) address ${rule}`],
      ['FAILED', `the webhook URL https://meta.example/ is refused: meta.example resolves to 169.254.169.254, a link-local address ${rule}`],
      ['FAILED', 'the host nowhere.example of the webhook URL could not be resolved (ENOTFOUND)'],
      ['CREATED', undefined],
      ['CREATED', undefined],
    ]);
    // Allowed hosts and addresses are never looked up; each name once.
    expect(asked.sort()).toEqual(['internal.example', 'meta.example', 'mixed.example', 'nowhere.example', 'public.example']);
  });

  test('when a partner certificate of group ws_a works with subscriptions, then it creates them in its own group, sees only those of its scope, and one outside behaves as if it did not exist', async () => {
    const op = (id: string, extra = ''): string => subscription(id, `<url>${receiver.url(`/${id}`)}</url><secret>${secret}</secret>${extra}`);
    const made = await server.batch(batch('ws-scope-1', op('ws-of-a') + op('ws-of-a1', '<licenseGroup>ws_a1</licenseGroup>') + op('ws-of-b', '<licenseGroup>ws_b</licenseGroup>')), { client: partner });
    expect(entries(made.body).map((e) => [e.status, e.message])).toEqual([
      ['CREATED', undefined],
      ['CREATED', undefined],
      ['FAILED', "license group 'ws_b' does not exist"],
    ]);
    expect(statuses((await server.batch(batch('ws-scope-2', op('ws-root-only', '<licenseGroup>ws_b</licenseGroup>')))).body)).toEqual(['CREATED']);
    const seen = await listing(partner);
    expect(seen.map((s) => [s.id, s.licenseGroup])).toEqual([
      ['ws-of-a', 'ws_a'],
      ['ws-of-a1', 'ws_a1'],
    ]);
    // Ids are global: the one outside is "not available" where a create would otherwise succeed, and absent for everything else.
    const outside = await server.batch(
      batch('ws-scope-3', op('ws-root-only') + subscription('ws-root-only', '', 'delete') + subscription('ws-root-only', '<active>false</active>') + subscription('ws-root-only', `<secret>${secret}</secret>`)),
      { client: partner },
    );
    expect(entries(outside.body).map((e) => [e.status, e.message])).toEqual([
      ['FAILED', 'subscription id ws-root-only is not available'],
      ['SKIPPED', 'subscription does not exist'],
      ['FAILED', "subscription 'ws-root-only' does not exist, and a subscription cannot be created without a <url>"],
      ['FAILED', "subscription 'ws-root-only' does not exist, and a subscription cannot be created without a <url>"],
    ]);
    expect((await one('ws-root-only'))?.state).toBe('active');
  });

  test('when a license group still has a subscription, then it cannot be deleted; deleting the subscription first in the same batch lets it go', async () => {
    const made = await server.batch(
      batch('ws-empty-1', `<licenseGroup><id>ws_gone</id><name>Gone</name></licenseGroup>${subscription('ws-in-gone', `<url>${receiver.url('/gone')}</url><secret>${secret}</secret><licenseGroup>ws_gone</licenseGroup>`)}`),
    );
    expect(statuses(made.body)).toEqual(['CREATED', 'CREATED']);
    const refused = await server.batch(batch('ws-empty-2', '<licenseGroup action="delete"><id>ws_gone</id></licenseGroup>'));
    expect(entries(refused.body)[0]).toMatchObject({ status: 'FAILED', message: 'license group ws_gone is not empty: 1 subscription' });
    const both = await server.batch(batch('ws-empty-3', `${subscription('ws-in-gone', '', 'delete')}<licenseGroup action="delete"><id>ws_gone</id></licenseGroup>`));
    expect(statuses(both.body)).toEqual(['DELETED', 'DELETED']);
    expect(statuses((await server.batch(batch('ws-empty-4', subscription('ws-in-gone', '', 'delete')))).body)).toEqual(['SKIPPED']);
    expect(await one('ws-in-gone')).toBeUndefined();
  });

  test('when a user acts, then creating, changing or listing subscriptions needs manageAll, and its owner is that user', async () => {
    const op = subscription('ws-by-user', `<url>${receiver.url('/by-user')}</url><secret>${secret}</secret>`);
    const clerk = await server.batch(batch('ws-user-1', op), { headers: { [AS]: 'ws.clerk' } });
    expect(entries(clerk.body)[0]).toMatchObject({ status: 'FAILED', message: 'permission denied: manageAll required' });
    const denied = await server.request('GET', '/subscriptions.json', { headers: { [AS]: 'ws.clerk' } });
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body)).toMatchObject({ winstrom: { success: false, message: 'Reading the webhook subscriptions needs the permission manageAll.' } });
    expect(statuses((await server.batch(batch('ws-user-2', op), { headers: { [AS]: 'ws.boss' } })).body)).toEqual(['CREATED']);
    const mine = (await listing(undefined, { [AS]: 'ws.boss' })).find((s) => s.id === 'ws-by-user');
    expect(mine?.owner).toEqual({ credential: expect.stringMatching(/^certificate /), user: 'ws.boss' });
  });

  test('when a subscription is switched off and on, or sent in a dry run, then its state follows and a dry run keeps nothing', async () => {
    const create = subscription('ws-toggle', `<url>${receiver.url('/toggle')}</url><secret>${secret}</secret><active>false</active>`);
    expect(statuses((await server.batch(batch('ws-t-1', create))).body)).toEqual(['CREATED']);
    expect(await one('ws-toggle')).toMatchObject({ state: 'inactive', pending: 0 });
    expect(statuses((await server.batch(batch('ws-t-2', subscription('ws-toggle', '<active>false</active>')))).body)).toEqual(['SKIPPED']);
    expect(statuses((await server.batch(batch('ws-t-3', subscription('ws-toggle', '<active>true</active>')))).body)).toEqual(['UPDATED']);
    expect((await one('ws-toggle'))?.state).toBe('active');
    const dry = await server.batch(batch('ws-t-4', `${subscription('ws-toggle', '', 'delete')}${subscription('ws-dry', `<url>${receiver.url('/dry')}</url><secret>${secret}</secret>`)}`, ' dry-run="true"'));
    expect(statuses(dry.body)).toEqual(['DELETED', 'CREATED']);
    expect(await one('ws-toggle')).toBeDefined();
    expect(await one('ws-dry')).toBeUndefined();
  });

  test('when a new secret is sent, then it is UPDATED and the old one keeps signing for the overlap; the same secret again is SKIPPED; no secret shows anywhere', async () => {
    const second = newSecret(32);
    const make = subscription('ws-rotate', `<url>${receiver.url('/rotate')}</url><secret>${secret}</secret>`);
    expect(statuses((await server.batch(batch('ws-r-1', make))).body)).toEqual(['CREATED']);
    // Padding is optional on the way in; the same key is the same secret.
    const unpadded = subscription('ws-rotate', `<secret>${secret.replace(/=+$/, '')}</secret>`);
    expect(statuses((await server.batch(batch('ws-r-2', unpadded))).body)).toEqual(['SKIPPED']);
    const rotated = await server.batch(batch('ws-r-3', subscription('ws-rotate', `<secret>${second}</secret>`)));
    expect(statuses(rotated.body)).toEqual(['UPDATED']);
    const listed = await one('ws-rotate');
    expect(Date.parse(listed?.previousSecretUntil ?? '')).toBeGreaterThan(Date.now() + server.config.webhookSecretOverlapMs - 3_600_000);
    expect(statuses((await server.batch(batch('ws-r-4', subscription('ws-rotate', `<secret>${second}</secret>`)))).body)).toEqual(['SKIPPED']);
    const journal = await server.request('GET', '/admin/batch/ws-r-3');
    const feed = await server.request('GET', '/events.json?after=0&limit=1000');
    for (const text of [journal.body, feed.body, (await server.request('GET', '/subscriptions.json')).body, server.logs.join('')]) {
      for (const s of [secret, second]) expect(text).not.toContain(s.slice(6, 30));
    }
  });
});
