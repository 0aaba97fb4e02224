import { addDays } from '../../src/domain/dates';
import { createLogger } from '../../src/log';
import { DateActions } from '../../src/tasks/date-actions';
import { localDate } from '../../src/tasks/runner';
import { sessionFor } from '../support/auth';
import { runCli } from '../support/cli';
import { startTestServer, entries, statuses, type TestServer } from '../support/server';
import { dumpStore, queryRows, runScript } from '../support/stores';
import { assertValidXml } from '../support/xmllint';

interface FeedEvent {
  seq: number;
  type: string;
  group: string;
  entity: { type: string; id: string };
  batchId: string | null;
  actor: { credential: string; user: string | null };
  changes?: Record<string, unknown>;
  [detail: string]: unknown;
}

/**
 * Date actions (SPEC §10.3, issue 12 point 3) as the task runner runs them, on a server whose own
 * runner is off so that each test decides when a run happens and for which date. The due dates
 * count from today (an action acts on due dates from the day it was created on).
 */
describe('date actions (SPEC §10.3)', () => {
  let server: TestServer;
  let dates: DateActions;
  const today = localDate();
  const day = (n: number): string => addDays(today, n) as string;
  let batchNo = 0;

  beforeAll(async () => {
    server = await startTestServer({ tasks: false });
    dates = new DateActions(server.running.store, createLogger('silent'));
  });
  afterAll(() => server.close());

  const send = async (operations: string): Promise<ReturnType<typeof entries>> => {
    const res = await server.batch(`<flexibee-batch id="da-${++batchNo}">${operations}</flexibee-batch>`);
    expect(res.status).toBe(200);
    return entries(res.body);
  };
  const lastSeq = (): Promise<number> => server.running.store.lastEventSeq();
  const eventsAfter = async (seq: number): Promise<FeedEvent[]> => (await server.running.store.listEvents('root', seq, 1000)).events.map((e) => JSON.parse(e) as FeedEvent);
  const user = async (username: string): Promise<Record<string, unknown> | undefined> => (await server.running.store.findUser('root', username)) as Record<string, unknown> | undefined;
  const company = async (id: string): Promise<Record<string, unknown> | undefined> =>
    (await server.running.store.listCompanies('root', { includeHidden: true }, { limit: 1000, start: 0 })).rows.find((c) => c.id === id) as Record<string, unknown> | undefined;
  const journal = async (action: string, date: string): Promise<string> => {
    const res = await server.request('GET', `/admin/batch/tasks-${action}-${date}`);
    expect(res.status).toBe(200);
    assertValidXml(res.body, 'batch-result');
    return res.body;
  };

  /** A license group with a task user holding `permissions` (SPEC §7.3: the user the group's tasks run as). */
  async function tenant(id: string, permissions: string[]): Promise<string> {
    const boss = `${id}.boss`;
    const held = permissions.map((p) => `<${p}>true</${p}>`).join('');
    expect(
      statuses(
        await server.batch(`<flexibee-batch id="tenant-${id}">
          <licenseGroup><id>${id}</id><name>${id} s.r.o.</name></licenseGroup>
          <user><username>${boss}</username><password>boss password of ${id}</password><permissions>${held}</permissions><licenseGroup>${id}</licenseGroup></user>
          <licenseGroup><id>${id}</id><param name="taskUser">${boss}</param></licenseGroup>
        </flexibee-batch>`).then((r) => r.body),
      ),
    ).toEqual(['CREATED', 'CREATED', 'UPDATED']);
    return boss;
  }

  const dateAction = (id: string, group: string, parts: string): string => `<dateAction><id>${id}</id>${parts}<licenseGroup>${group}</licenseGroup></dateAction>`;

  describe('the <dateAction> entity in the store', () => {
    test('when a date action is created, sent again, changed and deleted, then the answers are CREATED, SKIPPED, UPDATED, DELETED and SKIPPED', async () => {
      const xml = dateAction('ent-1', 'root', '<entity>USER</entity><field>validUntil</field><offset unit="months">3</offset><offset unit="days">-5</offset><do>block</do><message>Your trial has ended.</message>');
      expect(await send(xml)).toEqual([{ type: 'DATE_ACTION', action: 'CREATE_UPDATE', id: 'ent-1', status: 'CREATED' }]);
      expect((await send(xml)).map((e) => e.status)).toEqual(['SKIPPED']);
      expect((await send('<dateAction><id>ent-1</id><active>false</active></dateAction>')).map((e) => e.status)).toEqual(['UPDATED']);
      expect(queryRows(server.db, 'SELECT id, entity, field, offsets, act, message, license_group, active FROM date_actions WHERE id = ?', 'ent-1')).toEqual([
        { id: 'ent-1', entity: 'USER', field: 'validUntil', offsets: '[{"unit":"months","amount":3},{"unit":"days","amount":-5}]', act: 'block', message: 'Your trial has ended.', license_group: 'root', active: 0 },
      ]);
      expect((await send('<dateAction action="delete"><id>ent-1</id></dateAction>')).map((e) => e.status)).toEqual(['DELETED']);
      expect(await send('<dateAction action="delete"><id>ent-1</id></dateAction>')).toEqual([{ type: 'DATE_ACTION', action: 'DELETE', id: 'ent-1', status: 'SKIPPED', message: 'date action does not exist' }]);
      expect(queryRows(server.db, 'SELECT count(*) AS n FROM date_actions WHERE id = ?', 'ent-1').map((r) => Number(r.n))).toEqual([0]);
    });

    test('when a license group still holds a date action, then deleting the group is FAILED naming it, and it goes once the action is deleted', async () => {
      await send(`<licenseGroup><id>ent_g</id><name>G</name></licenseGroup>${dateAction('ent-2', 'ent_g', '<entity>COMPANY</entity><field>createdAt</field><do>remind</do>')}`);
      expect(await send('<licenseGroup action="delete"><id>ent_g</id></licenseGroup>')).toEqual([
        { type: 'LICENSE_GROUP', action: 'DELETE', id: 'ent_g', status: 'FAILED', message: 'license group ent_g is not empty: 1 date action' },
      ]);
      expect((await send('<dateAction action="delete"><id>ent-2</id></dateAction><licenseGroup action="delete"><id>ent_g</id></licenseGroup>')).map((e) => e.status)).toEqual(['DELETED', 'DELETED']);
    });
  });

  describe('runs', () => {
    test('when a block action is due, then the run blocks the user once with its message, as the task user, journalled as tasks-{action}-{date}; a run again does nothing; missed days are caught up', async () => {
      const boss = await tenant('da_block', ['createUser']);
      await send(`<user><username>da.now</username><validUntil>${today}</validUntil><licenseGroup>da_block</licenseGroup></user>
        <user><username>da.later</username><validUntil>${day(5)}</validUntil><licenseGroup>da_block</licenseGroup></user>
        ${dateAction('da-block', 'da_block', '<entity>USER</entity><field>validUntil</field><do>block</do><message>Trial over</message>')}`);
      const start = await lastSeq();
      await dates.runDue(today);
      expect(await user('da.now')).toMatchObject({ blocked: true, blockMessage: 'Trial over' });
      expect(await user('da.later')).toMatchObject({ blocked: false });
      const events = await eventsAfter(start);
      expect(events.map((e) => [e.type, e.entity.id, e.batchId, e.actor])).toEqual([
        ['USER_BLOCKED', 'da.now', `tasks-da-block-${today}`, { credential: 'tasks', user: boss }],
      ]);
      expect(entries(await journal('da-block', today))).toEqual([{ type: 'USER', action: 'CREATE_UPDATE', id: 'da.now', status: 'UPDATED', message: `due ${today}` }]);

      const again = await lastSeq();
      await dates.runDue(today);
      expect(await eventsAfter(again)).toEqual([]);

      // Nothing ran for ten days: the next run catches up what fell due meanwhile.
      await dates.runDue(day(10));
      expect(await user('da.later')).toMatchObject({ blocked: true, blockMessage: 'Trial over' });
      expect((await eventsAfter(again)).map((e) => [e.type, e.entity.id, e.batchId])).toEqual([['USER_BLOCKED', 'da.later', `tasks-da-block-${day(10)}`]]);
    });

    test('when an object was handled and is unblocked, then it is not blocked again for that due date; a changed field gives a new due date that fires', async () => {
      await tenant('da_again', ['createUser']);
      await send(`<user><username>da.again</username><validUntil>${today}</validUntil><licenseGroup>da_again</licenseGroup></user>
        ${dateAction('da-again', 'da_again', '<entity>USER</entity><field>validUntil</field><do>block</do>')}`);
      await dates.runDue(today);
      expect(await user('da.again')).toMatchObject({ blocked: true, blockMessage: null });
      await send('<user><username>da.again</username><blocked>false</blocked></user>');
      await dates.runDue(day(1));
      expect(await user('da.again')).toMatchObject({ blocked: false });
      await send(`<user><username>da.again</username><validUntil>${day(2)}</validUntil></user>`);
      await dates.runDue(day(1));
      expect(await user('da.again')).toMatchObject({ blocked: false });
      await dates.runDue(day(2));
      expect(await user('da.again')).toMatchObject({ blocked: true });
    });

    test('when months are added across a month end, then the action fires on the clamped day: 31 January + 1 month, and 30 November + 3 months − 5 days in a leap year', async () => {
      const boss = await tenant('da_months', ['manageAll']);
      await send(`<user><username>da.months</username><validUntil>2099-01-31</validUntil><licenseGroup>da_months</licenseGroup></user>
        <company><id>da_months_co</id><name>Months s.r.o.</name><adminUser>${boss}</adminUser><validUntil>2095-11-30</validUntil><licenseGroup>da_months</licenseGroup></company>
        ${dateAction('da-month-end', 'da_months', '<entity>USER</entity><field>validUntil</field><offset unit="months">1</offset><do>remind</do><message>A month has passed.</message>')}
        ${dateAction('da-spec-example', 'da_months', '<entity>COMPANY</entity><field>validUntil</field><offset unit="months">3</offset><offset unit="days">-5</offset><do>hide</do>')}`);
      const start = await lastSeq();
      await dates.runDue('2096-02-23');
      expect(await company('da_months_co')).toMatchObject({ show: true });
      await dates.runDue('2096-02-24');
      expect(await company('da_months_co')).toMatchObject({ show: false });
      await dates.runDue('2099-02-27');
      expect((await eventsAfter(start)).map((e) => e.type)).toEqual(['COMPANY_HIDDEN']);
      await dates.runDue('2099-02-28');
      const reminder = (await eventsAfter(start)).find((e) => e.type === 'REMINDER');
      expect(reminder).toMatchObject({
        group: 'da_months',
        entity: { type: 'USER', id: 'da.months' },
        batchId: 'tasks-da-month-end-2099-02-28',
        actor: { credential: 'tasks', user: boss },
        action: 'da-month-end',
        message: 'A month has passed.',
        dueDate: '2099-02-28',
      });
      expect(entries(await journal('da-month-end', '2099-02-28'))).toEqual([
        { type: 'USER', action: 'CREATE_UPDATE', id: 'da.months', status: 'SKIPPED', message: 'nothing changed; a REMINDER was sent (due 2099-02-28)' },
      ]);
    });

    test('when the task user lacks the permission, then nothing is done, TASK_FAILED says why once, the run retries, and it acts once the permission is granted', async () => {
      const boss = await tenant('da_perm', []);
      await send(`<user><username>da.perm</username><validUntil>${today}</validUntil><licenseGroup>da_perm</licenseGroup></user>
        ${dateAction('da-perm', 'da_perm', '<entity>USER</entity><field>validUntil</field><do>block</do>')}`);
      const start = await lastSeq();
      await dates.runDue(today);
      expect(await user('da.perm')).toMatchObject({ blocked: false });
      const reason = `task user ${boss}: permission denied: createUser required`;
      expect(await eventsAfter(start)).toEqual([
        expect.objectContaining({ type: 'TASK_FAILED', group: 'da_perm', entity: { type: 'USER', id: 'da.perm' }, action: 'da-perm', do: 'block', reason, dueDate: today, actor: { credential: 'tasks', user: boss } }),
      ]);
      expect(entries(await journal('da-perm', today))).toEqual([{ type: 'USER', action: 'CREATE_UPDATE', id: 'da.perm', status: 'FAILED', message: `${reason} (due ${today})` }]);

      const told = await lastSeq();
      await dates.runDue(day(1));
      expect(await eventsAfter(told)).toEqual([]);
      expect(entries(await journal('da-perm', day(1))).map((e) => e.status)).toEqual(['FAILED']);

      await send(`<user><username>${boss}</username><permissions><createUser>true</createUser></permissions></user>`);
      await dates.runDue(day(2));
      expect(await user('da.perm')).toMatchObject({ blocked: true });
      expect((await eventsAfter(told)).map((e) => [e.type, e.entity.id])).toEqual([
        ['USER_UPDATED', boss],
        ['USER_BLOCKED', 'da.perm'],
      ]);
    });

    test('when a group has no task user, or a blocked one, then nothing is done and TASK_FAILED says which', async () => {
      await send(`<licenseGroup><id>da_nobody</id><name>Nobody</name></licenseGroup>
        <user><username>da.orphan</username><validUntil>${today}</validUntil><licenseGroup>da_nobody</licenseGroup></user>
        ${dateAction('da-nobody', 'da_nobody', '<entity>USER</entity><field>validUntil</field><do>remind</do>')}`);
      const boss = await tenant('da_blocked', ['manageAll']);
      await send(`<user><username>da.blocked.subject</username><validUntil>${today}</validUntil><licenseGroup>da_blocked</licenseGroup></user>
        <user><username>${boss}</username><blocked>true</blocked></user>
        ${dateAction('da-blocked', 'da_blocked', '<entity>USER</entity><field>validUntil</field><do>remind</do>')}`);
      const start = await lastSeq();
      await dates.runDue(today);
      expect((await eventsAfter(start)).map((e) => [e.type, e.entity.id, e.reason, e.actor.user])).toEqual([
        ['TASK_FAILED', 'da.blocked.subject', `task user ${boss} is blocked`, boss],
        ['TASK_FAILED', 'da.orphan', 'no taskUser is set for license group da_nobody or a group above it', null],
      ]);
    });

    test('when an object is deleted or already blocked, then it is skipped: no change, no event; a due date before the action existed is not acted on', async () => {
      await tenant('da_skip', ['createUser', 'licenseManagement']);
      await send(`<user><username>da.gone</username><validUntil>${today}</validUntil><licenseGroup>da_skip</licenseGroup></user>
        <user action="delete"><username>da.gone</username></user>
        <user><username>da.already</username><validUntil>${today}</validUntil><blocked message="by hand">true</blocked><licenseGroup>da_skip</licenseGroup></user>
        <user><username>da.history</username><validUntil>${day(-1)}</validUntil><licenseGroup>da_skip</licenseGroup></user>
        ${dateAction('da-skip', 'da_skip', '<entity>USER</entity><field>validUntil</field><do>block</do><message>expired</message>')}`);
      const start = await lastSeq();
      await dates.runDue(today);
      expect(await eventsAfter(start)).toEqual([]);
      expect(await user('da.already')).toMatchObject({ blocked: true, blockMessage: 'by hand' });
      expect(await user('da.history')).toMatchObject({ blocked: false });
      expect(entries(await journal('da-skip', today))).toEqual([
        { type: 'USER', action: 'CREATE_UPDATE', id: 'da.already', status: 'SKIPPED', message: `user is already blocked (due ${today})` },
      ]);
    });

    test('when delete actions are due, then users and companies are deleted as their batches would, with the permissions of the task user', async () => {
      const boss = await tenant('da_delete', ['createUser', 'licenseManagement', 'createCompany', 'deleteCompany']);
      await send(`<user><username>da.del.user</username><validUntil>${today}</validUntil><licenseGroup>da_delete</licenseGroup></user>
        <company><id>da_del_co</id><name>Del s.r.o.</name><adminUser>${boss}</adminUser><validUntil>${today}</validUntil><licenseGroup>da_delete</licenseGroup></company>
        ${dateAction('da-del-users', 'da_delete', '<entity>USER</entity><field>validUntil</field><do>delete</do>')}
        ${dateAction('da-del-companies', 'da_delete', '<entity>COMPANY</entity><field>validUntil</field><do>delete</do>')}`);
      const start = await lastSeq();
      await dates.runDue(today);
      expect(await user('da.del.user')).toBeUndefined();
      expect(await company('da_del_co')).toBeUndefined();
      expect((await eventsAfter(start)).map((e) => [e.type, e.entity.id])).toEqual([
        ['ACCESS_REVOKED', `${boss}@da_del_co`],
        ['COMPANY_DELETED', 'da_del_co'],
        ['USER_DELETED', 'da.del.user'],
      ]);
      expect(queryRows(server.db, "SELECT count(*) AS n FROM date_action_fired WHERE entity = 'COMPANY' AND object_key = ?", 'da_del_co').map((r) => Number(r.n))).toEqual([0]);
    });

    test('when an action counts from createdAt or lastLoginAt, then a user\'s creation and its last login start the count; a login sets lastLoginAt', async () => {
      const boss = await tenant('da_login', ['createUser']);
      await send(`<user><username>da.login</username><password>the login password</password><licenseGroup>da_login</licenseGroup></user>
        ${dateAction('da-created', 'da_login', '<entity>USER</entity><field>createdAt</field><offset unit="weeks">1</offset><do>remind</do><message>a week with us</message>')}
        ${dateAction('da-idle', 'da_login', '<entity>USER</entity><field>lastLoginAt</field><offset unit="days">30</offset><do>block</do><message>idle for 30 days</message>')}`);
      expect(JSON.parse((await server.request('GET', '/u/da.login.json')).body).winstrom.user[0].lastLoginAt).toBeNull();
      await sessionFor(server, 'da.login', 'the login password');
      const seen = JSON.parse((await server.request('GET', '/u/da.login.json')).body).winstrom.user[0].lastLoginAt as string;
      expect(seen).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      const start = await lastSeq();
      await dates.runDue(day(29));
      expect((await eventsAfter(start)).map((e) => [e.type, e.entity.id])).toEqual([
        ['REMINDER', 'da.login'],
        ['REMINDER', boss],
      ]);
      await dates.runDue(day(30));
      expect(await user('da.login')).toMatchObject({ blocked: true, blockMessage: 'idle for 30 days' });
    });

    test('when one action cannot run (the store fails it), then the others still run and the round ends with an error naming it; a stored date that cannot be read is no due date', async () => {
      await tenant('zz_iso', ['createUser']);
      await send(`<user><username>zz.iso</username><validUntil>${today}</validUntil><licenseGroup>zz_iso</licenseGroup></user>
        <user><username>zz.garbled</username><licenseGroup>zz_iso</licenseGroup></user>
        ${dateAction('zz-isolated', 'zz_iso', '<entity>USER</entity><field>validUntil</field><do>block</do>')}`);
      // As an import from elsewhere might have left it: a value no batch can write.
      runScript(server.db, "UPDATE users SET valid_until = '2026-02-30' WHERE key = 'zz.garbled';");
      const store = server.running.store;
      let calls = 0;
      const flaky = new Proxy(store, {
        get(target, name) {
          if (name === 'inBatch') return (...args: Parameters<typeof store.inBatch>) => (++calls === 1 ? Promise.reject(new Error('the store went away for a moment')) : target.inBatch(...args));
          const value = Reflect.get(target, name, target) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const first = (await store.listDateActions()).find((a) => a.active)?.id;
      expect(first).not.toBe('zz-isolated');
      await expect(new DateActions(flaky, createLogger('silent')).runDue(today)).rejects.toThrow(`date actions that could not run on ${today}: ${first}: the store went away for a moment`);
      expect(await user('zz.iso')).toMatchObject({ blocked: true });
      expect(await user('zz.garbled')).toMatchObject({ blocked: false });
    });

    test('when the runs are planned, then plan says what each would do and changes nothing, and `flexi-admin tasks plan --date` prints the same', async () => {
      const boss = await tenant('da_plan', ['createUser']);
      await send(`<user><username>da.plan.1</username><validUntil>${day(3)}</validUntil><licenseGroup>da_plan</licenseGroup></user>
        <user><username>da.plan.2</username><validUntil>${day(4)}</validUntil><blocked>true</blocked><licenseGroup>da_plan</licenseGroup></user>
        ${dateAction('da-plan', 'da_plan', '<entity>USER</entity><field>validUntil</field><offset unit="days">1</offset><do>block</do>')}`);
      const before = { rows: dumpStore(server.db), seq: await lastSeq(), fired: queryRows(server.db, 'SELECT * FROM date_action_fired ORDER BY 1, 2, 3, 4'), journal: queryRows(server.db, 'SELECT count(*) AS n FROM batch_journal') };
      const lines = (await dates.plan(day(5))).filter((l) => l.startsWith('da-plan:'));
      expect(lines).toEqual([
        `da-plan: block user da.plan.1 (due ${day(4)}: validUntil + 1 days), as task user ${boss}`,
        `da-plan: nothing for user da.plan.2 (due ${day(5)}: validUntil + 1 days): user is already blocked`,
      ]);
      const cli = await runCli(['tasks', 'plan', '--date', day(5)], { env: { FLEXI_DB: server.db } });
      expect({ code: cli.code, stderr: cli.stderr }).toEqual({ code: 0, stderr: '' });
      expect(cli.stdout.split('\n').filter((l) => l.startsWith('da-plan:'))).toEqual(lines);
      expect({ rows: dumpStore(server.db), seq: await lastSeq(), fired: queryRows(server.db, 'SELECT * FROM date_action_fired ORDER BY 1, 2, 3, 4'), journal: queryRows(server.db, 'SELECT count(*) AS n FROM batch_journal') }).toEqual(before);
    });
  });
});
