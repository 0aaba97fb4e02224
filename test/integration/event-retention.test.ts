import { randomBytes } from 'node:crypto';
import { createLogger } from '../../src/log';
import { createJobs } from '../../src/tasks/jobs';
import { TaskRunner } from '../../src/tasks/runner';
import { startTestServer, statuses, type TestServer } from '../support/server';
import { queryRows } from '../support/stores';

interface Feed {
  events: Array<{ seq: number; batchId: string }>;
  next: number;
}

/**
 * Retention (SPEC §10.1: events are kept --event-retention): the task runner deletes whole commits
 * of events older than the retention, never one that an active or suspended subscription has not
 * had yet, and never a number: later events go on from the last seq.
 */
describe('event retention by the task runner (SPEC §10.1)', () => {
  let server: TestServer;

  beforeAll(async () => {
    // No runner inside the server: the test runs one itself, with a retention of a millisecond.
    server = await startTestServer({ tasks: false, webhookAllowHosts: ['127.0.0.1'], webhookRetryMs: [3_600_000] });
  });
  afterAll(() => server.close());

  const feed = async (): Promise<Feed> => JSON.parse((await server.request('GET', '/events.json?after=0&limit=1000')).body) as Feed;
  const batchIds = (f: Feed): string[] => [...new Set(f.events.map((e) => e.batchId))];

  test('when the retention has passed, then old events are deleted but those a subscription still waits for, and seq goes on', async () => {
    expect(statuses((await server.batch('<flexibee-batch id="ret-1"><user><username>ret.one</username></user><user><username>ret.two</username></user></flexibee-batch>')).body)).toEqual([
      'CREATED',
      'CREATED',
    ]);
    // An active subscription to an endpoint that refuses connections: it will not get ret-2's events.
    const secret = `whsec_${randomBytes(24).toString('base64')}`;
    const subscribed = await server.batch(
      `<flexibee-batch id="ret-sub"><subscription><id>ret-hook</id><url>http://127.0.0.1:1/hook</url><secret>${secret}</secret><excludeOwn>false</excludeOwn></subscription></flexibee-batch>`,
    );
    expect(statuses(subscribed.body)).toEqual(['CREATED']);
    expect(statuses((await server.batch('<flexibee-batch id="ret-2"><user><username>ret.three</username></user></flexibee-batch>')).body)).toEqual(['CREATED']);
    const before = await feed();
    expect(batchIds(before)).toEqual(['ret-1', 'ret-2']);
    const last = before.next;

    const { store } = server.running;
    const { config } = server;
    const runner = new TaskRunner({ store, logger: createLogger('silent'), leaseMs: 2000, taskTime: config.taskTime, eventRetentionMs: 1, ...createJobs({ store, config, logger: createLogger('silent') }) });
    expect(await runner.runOnce()).toBe(true);

    // ret-1 is older than the retention and every subscription has had it; ret-2 waits for ret-hook.
    expect(batchIds(await feed())).toEqual(['ret-2']);
    expect(queryRows(server.db, "SELECT value FROM counters WHERE name = 'event_seq'")).toEqual([{ value: last }]);
    const listed = JSON.parse((await server.request('GET', '/subscriptions.json')).body) as { subscriptions: Array<{ id: string; pending: number; state: string }> };
    expect(listed.subscriptions.find((s) => s.id === 'ret-hook')).toMatchObject({ state: 'active', pending: 1 });

    // Once the subscription is switched off it holds nothing back.
    const off = await server.batch(`<flexibee-batch id="ret-off"><subscription><id>ret-hook</id><active>false</active></subscription></flexibee-batch>`);
    expect(statuses(off.body)).toEqual(['UPDATED']);
    expect(await runner.runOnce()).toBe(true);
    expect((await feed()).events).toEqual([]);

    // Numbers are never taken back: the next event comes after the last one deleted.
    expect(statuses((await server.batch('<flexibee-batch id="ret-3"><user><username>ret.four</username></user></flexibee-batch>')).body)).toEqual(['CREATED']);
    expect((await feed()).events.map((e) => e.seq)).toEqual([last + 1]);
  });
});
