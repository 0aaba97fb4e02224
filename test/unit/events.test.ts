import { parseBatch } from '../../src/batch/parse';
import { planBatch, type Plan, type Snapshot } from '../../src/batch/plan';
import { bodyOf, decodeRun, encodeRun, eventRuns, matchesEventPatterns, MAX_RUN_EVENTS, type EventBody, type PlannedEvent } from '../../src/domain/events';
import { rootGroup, type GroupRecord } from '../../src/domain/groups';
import { verifyPasswordSync } from '../../src/domain/passwords';
import { noPermissions } from '../../src/domain/permissions';
import type { Principal } from '../../src/domain/principals';
import { company, grant, sha256, snapshot, user, withEventBodies } from '../support/snapshots';

/**
 * The events a batch makes (SPEC §10.1), as the planner derives them: one or more per change, in
 * the order the changes happen, none for what is not committed, never a password.
 */
const ROOT: Principal = { kind: 'cli', name: 'cli', scope: 'root' };

const group = (id: string, parentId: string, over: Partial<GroupRecord> = {}): GroupRecord => ({ id, name: id, parentId, seats: null, seatsUsed: 0, params: {}, ...over });

const ANNA = user('anna', { email: 'anna@firma.cz', passwordHash: sha256('s', 'old secret') });
const BOB = user('bob', { licenseGroup: 'ga' });
const FIRMA = company('firma', { name: 'Firma' });
const WORLD: Snapshot = snapshot({
  users: [ANNA, BOB],
  companies: [FIRMA],
  access: [grant('anna', 'firma', 'ADMIN'), grant('bob', 'firma', 'UCETNI')],
  groups: [{ ...rootGroup(), seatsUsed: 2 }, group('ga', 'root', { seatsUsed: 1 })],
});

/** The plan with every event's body built, as the store writes them. */
function plan(operations: string, snap: Snapshot = WORLD, rootAttributes = '', principal: Principal = ROOT): Plan {
  const doc = parseBatch(`<flexibee-batch id="t"${rootAttributes}>${operations}</flexibee-batch>`, { maxOperations: 1000 });
  return withEventBodies(planBatch(doc, snap, { principal, passwordMatches: verifyPasswordSync }));
}

/** [type, entity id, group] of each event. */
const kinds = (p: Plan): Array<[string, string, string]> => p.events.map((e) => [bodyOf(e).type, bodyOf(e).entity.id, e.group]);

describe('events of users (SPEC §10.1)', () => {
  test('when a user is created with a password, then USER_CREATED names the values it starts with and only that a password was set', () => {
    const p = plan('<user><username>Carol</username><password>carol secret</password><email>c@firma.cz</email><permissions><createUser>true</createUser></permissions></user>');
    expect(p.events).toEqual([
      {
        group: 'root',
        body: {
          type: 'USER_CREATED',
          entity: { type: 'USER', id: 'Carol' },
          values: { email: 'c@firma.cz', password: 'set', permissions: ['createUser'], userType: 'NORMAL' },
        },
      },
    ]);
    expect(JSON.stringify(p.events)).not.toContain('carol secret');
  });

  test('when a user is created blocked, then USER_CREATED and USER_BLOCKED with the message', () => {
    expect(plan('<user><username>dora</username><blocked message="not yet">true</blocked></user>').events).toEqual([
      { group: 'root', body: { type: 'USER_CREATED', entity: { type: 'USER', id: 'dora' }, values: { userType: 'NORMAL' } } },
      { group: 'root', body: { type: 'USER_BLOCKED', entity: { type: 'USER', id: 'dora' }, values: { blockMessage: 'not yet' } } },
    ]);
  });

  test('when an update also blocks, then it is USER_UPDATED then USER_BLOCKED with the message; unblocking is USER_UNBLOCKED', () => {
    const blocked = plan('<user><username>anna</username><email>new@firma.cz</email><blocked message="unpaid">true</blocked></user>');
    expect(blocked.events).toEqual([
      { group: 'root', body: { type: 'USER_UPDATED', entity: { type: 'USER', id: 'anna' }, changes: { email: { from: 'anna@firma.cz', to: 'new@firma.cz' } } } },
      { group: 'root', body: { type: 'USER_BLOCKED', entity: { type: 'USER', id: 'anna' }, values: { blockMessage: 'unpaid' } } },
    ]);
    const snap = snapshot({ ...WORLD, users: [{ ...ANNA, blocked: true, blockMessage: 'unpaid' }, BOB] });
    expect(kinds(plan('<user><username>anna</username><blocked>false</blocked></user>', snap))).toEqual([['USER_UNBLOCKED', 'anna', 'root']]);
  });

  test('when a password changes, then the event says so and carries neither the value nor a hash', () => {
    const p = plan(`<user><username>anna</username><password hash="sha256" salt="t">${'ab'.repeat(32)}</password></user>`);
    expect(p.events).toEqual([{ group: 'root', body: { type: 'USER_UPDATED', entity: { type: 'USER', id: 'anna' }, changes: { password: { changed: true } } } }]);
    expect(JSON.stringify(p.events)).not.toMatch(/abab|sha256/);
  });

  test('when a user is deleted and restored, then USER_DELETED and USER_RESTORED; a user moved names the group it left', () => {
    const p = plan('<user action="delete"><username>anna</username></user><user><username>anna</username></user>');
    expect(kinds(p)).toEqual([
      ['USER_DELETED', 'anna', 'root'],
      ['USER_RESTORED', 'anna', 'root'],
    ]);
    expect(bodyOf(p.events[1]).values).toEqual({ email: 'anna@firma.cz', password: 'set', userType: 'NORMAL' });
    const moved = plan('<user><username>anna</username><licenseGroup>ga</licenseGroup></user>');
    expect(moved.events).toEqual([{ group: 'ga', body: { type: 'USER_UPDATED', entity: { type: 'USER', id: 'anna' }, changes: { licenseGroup: { from: 'root', to: 'ga' } } } }]);
  });
});

describe('events of companies and access (SPEC §10.1)', () => {
  test('when a company is created with its admin, then COMPANY_CREATED and ACCESS_GRANTED of the admin grant, in that order', () => {
    const p = plan('<company><id>nova</id><name>Nova</name><adminUser>anna</adminUser></company>');
    expect(kinds(p)).toEqual([
      ['COMPANY_CREATED', 'nova', 'root'],
      ['ACCESS_GRANTED', 'anna@nova', 'root'],
    ]);
    expect(bodyOf(p.events[0]).values).toEqual({ name: 'Nova', country: 'CZ', type: 'PODNIKATELE+PU', show: true });
    expect(p.events[1]).toEqual({ group: 'root', body: { type: 'ACCESS_GRANTED', entity: { type: 'ACCESS_LIST', id: 'anna@nova' }, user: 'anna', company: 'nova', role: 'ADMIN' } });
  });

  test('when a company is hidden, shown or renamed, then COMPANY_HIDDEN, COMPANY_SHOWN and COMPANY_UPDATED', () => {
    expect(kinds(plan('<company><id>firma</id><name>Firma 2</name><show>false</show></company>'))).toEqual([
      ['COMPANY_UPDATED', 'firma', 'root'],
      ['COMPANY_HIDDEN', 'firma', 'root'],
    ]);
    const hidden = snapshot({ ...WORLD, companies: [{ ...FIRMA, show: false }] });
    expect(kinds(plan('<company><id>firma</id><show>true</show></company>', hidden))).toEqual([['COMPANY_SHOWN', 'firma', 'root']]);
  });

  test('when a company is deleted, then each of its grants is revoked first and the company deleted after', () => {
    const p = plan('<company action="delete"><id>firma</id></company>');
    expect(kinds(p)).toEqual([
      ['ACCESS_REVOKED', 'anna@firma', 'root'],
      ['ACCESS_REVOKED', 'bob@firma', 'root'],
      ['COMPANY_DELETED', 'firma', 'root'],
    ]);
    // bob lives in ga: his access event needs ga in scope as well as the company's root.
    expect(p.events[1]).toEqual({ group: 'root', userGroup: 'ga', body: { type: 'ACCESS_REVOKED', entity: { type: 'ACCESS_LIST', id: 'bob@firma' }, user: 'bob', company: 'firma', role: 'UCETNI' } });
  });

  test('when a role changes, then ACCESS_CHANGED with both roles; a grant everywhere changes each grant', () => {
    const p = plan('<access user="bob" role="SKLADNIK">firma</access>');
    expect(p.events).toEqual([
      {
        group: 'root',
        userGroup: 'ga',
        body: { type: 'ACCESS_CHANGED', entity: { type: 'ACCESS_LIST', id: 'bob@firma' }, user: 'bob', company: 'firma', role: 'SKLADNIK', changes: { role: { from: 'UCETNI', to: 'SKLADNIK' } } },
      },
    ]);
    expect(kinds(plan('<access user="anna" role="UCETNI"/>'))).toEqual([['ACCESS_CHANGED', 'anna@firma', 'root']]);
  });
});

describe('events of license groups (SPEC §10.1)', () => {
  test('when a group is created, changed and deleted, then LICENSE_GROUP_CREATED, _UPDATED with what changed, and _DELETED belonging to the parent', () => {
    const p = plan(`<licenseGroup><id>gb</id><name>B</name><seats>5</seats><param name="country">SK</param></licenseGroup>
      <licenseGroup><id>gb</id><name>B2</name><param name="country"/></licenseGroup>
      <licenseGroup action="delete"><id>gb</id></licenseGroup>`);
    expect(p.events).toEqual([
      { group: 'gb', body: { type: 'LICENSE_GROUP_CREATED', entity: { type: 'LICENSE_GROUP', id: 'gb' }, values: { name: 'B', parent: 'root', seats: 5, params: { country: 'SK' } } } },
      { group: 'gb', body: { type: 'LICENSE_GROUP_UPDATED', entity: { type: 'LICENSE_GROUP', id: 'gb' }, changes: { name: { from: 'B', to: 'B2' }, 'params.country': { from: 'SK', to: null } } } },
      { group: 'root', body: { type: 'LICENSE_GROUP_DELETED', entity: { type: 'LICENSE_GROUP', id: 'gb' } } },
    ]);
  });

  test('when a group moves, then its update names the old and the new parent', () => {
    const snap = snapshot({ ...WORLD, groups: [...WORLD.groups, group('gc', 'root')] });
    expect(plan('<licenseGroup><id>gc</id><parent>ga</parent></licenseGroup>', snap).events).toEqual([
      { group: 'gc', body: { type: 'LICENSE_GROUP_UPDATED', entity: { type: 'LICENSE_GROUP', id: 'gc' }, changes: { parent: { from: 'root', to: 'ga' } } } },
    ]);
  });
});

describe('no event for what is not committed (SPEC §10.1)', () => {
  test('when operations are SKIPPED or FAILED, then they make no event and the others make theirs', () => {
    const p = plan(`<user><username>anna</username><email>anna@firma.cz</email></user>
      <access user="nobody">firma</access>
      <user><username>anna</username><givenName>Anna</givenName></user>`);
    expect(p.results.map((r) => r.status)).toEqual(['SKIPPED', 'FAILED', 'UPDATED']);
    expect(kinds(p)).toEqual([['USER_UPDATED', 'anna', 'root']]);
  });

  test('when an atomic batch has a FAILED operation, then it is rolled back and makes no event at all', () => {
    const p = plan('<user><username>dave</username></user><access user="nobody">firma</access>', WORLD, ' atomic="true"');
    expect(p.results.map((r) => r.status)).toEqual(['SKIPPED', 'FAILED']);
    expect(p.events).toEqual([]);
  });

  test('when a permission is missing, then the refused operation makes no event', () => {
    const actor = user('actor', { permissions: { ...noPermissions(), createUser: true } });
    const snap = snapshot({ ...WORLD, users: [ANNA, BOB, actor] });
    const p = plan('<company><id>nova</id><name>Nova</name><adminUser>actor</adminUser></company><user><username>eve</username></user>', snap, '', { ...ROOT, kind: 'certificate', actingUser: 'actor' });
    expect(p.results.map((r) => r.status)).toEqual(['FAILED', 'CREATED']);
    expect(kinds(p)).toEqual([['USER_CREATED', 'eve', 'root']]);
  });
});

describe('event type patterns of a subscription (SPEC §10.2)', () => {
  const event = (type: EventBody['type']): string => type;
  test.each([
    [[], 'USER_CREATED', true],
    [['USER_*'], 'USER_BLOCKED', true],
    [['USER_*'], 'COMPANY_CREATED', false],
    [['ACCESS_GRANTED'], 'ACCESS_GRANTED', true],
    [['ACCESS_GRANTED'], 'ACCESS_REVOKED', false],
    [['*'], 'REMINDER', true],
    [['COMPANY_*', 'ACCESS_*'], 'ACCESS_REVOKED', true],
  ] as const)('when the patterns are %j, then %s matches: %s', (patterns, type, matches) => {
    expect(matchesEventPatterns(patterns, event(type))).toBe(matches);
  });
});

describe('how a run of events is kept (the outbox rows)', () => {
  const body = (i: number): EventBody => ({ type: 'USER_CREATED', entity: { type: 'USER', id: `user.${i}` }, values: { email: `user.${i}@firma.cz`, userType: 'NORMAL' } });

  test('when a run is short, then it is kept as its JSON array, readable as it is', () => {
    const bodies = [body(1), body(2)];
    const data = encodeRun(bodies);
    expect(data).toBe(JSON.stringify(bodies));
    expect(decodeRun(data)).toEqual(bodies);
  });

  test('when a run is long, then it is kept deflated, much smaller, and reads back the same events in order', () => {
    const bodies = Array.from({ length: 2000 }, (_, i) => body(i));
    const data = encodeRun(bodies);
    expect(data.startsWith('z')).toBe(true);
    expect(data.length).toBeLessThan(JSON.stringify(bodies).length / 5);
    expect(decodeRun(data)).toEqual(bodies);
  });

  test('when a commit has more events of one scope than a run holds, then they become consecutive runs of at most MAX_RUN_EVENTS, in order', () => {
    const planned = (i: number, group = 'ga'): PlannedEvent => ({ group, body: body(i) });
    const events = [...Array.from({ length: 2 * MAX_RUN_EVENTS + 1 }, (_, i) => planned(i)), planned(9999, 'gb')];
    const runs = eventRuns(events, 101);
    expect(runs.map((r) => [r.seq, r.group, r.events.length])).toEqual([
      [101, 'ga', MAX_RUN_EVENTS],
      [101 + MAX_RUN_EVENTS, 'ga', MAX_RUN_EVENTS],
      [101 + 2 * MAX_RUN_EVENTS, 'ga', 1],
      [102 + 2 * MAX_RUN_EVENTS, 'gb', 1],
    ]);
    expect(runs.flatMap((r) => r.events)).toEqual(events);
  });
});
