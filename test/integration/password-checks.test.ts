import { emptyChangeSet } from '../../src/domain/changes';
import type { Config } from '../../src/config';
import { MAX_PBKDF2_ITERATIONS } from '../../src/domain/passwords';
import { ROOT_GROUP } from '../../src/domain/principals';
import { expectRefused, loginJson, preHashedPassword, storedHashMatches, type Algorithm } from '../support/auth';
import { startTestServer, statuses, type Response, type TestServer } from '../support/server';
import { dumpStore } from '../support/stores';

/**
 * Issue 9, points 3, 4 and 11: login password checks are bounded and never a 500, and a failed
 * login runs the same hashing work whether the name exists or not and however it is stored.
 */

const running: TestServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function serverWith(overrides: Partial<Config> = {}): Promise<TestServer> {
  const server = await startTestServer(overrides);
  running.push(server);
  return server;
}

async function seed(server: TestServer, users: string): Promise<void> {
  const res = await server.batch(`<flexibee-batch id="password-checks-seed">${users}</flexibee-batch>`);
  expect(res.status).toBe(200);
  expect(statuses(res.body)).not.toContain('FAILED');
}

const preHashed = (username: string, algorithm: Algorithm, password: string, iterations = 1000): string =>
  `<user><username>${username}</username>${preHashedPassword(algorithm, `salt-${username}`, password, iterations)}</user>`;

type LogEntry = { msg: string; reason?: string; pbkdf2Iterations?: number; status?: number };
const logEntries = (server: TestServer): LogEntry[] => server.logs.map((line) => JSON.parse(line) as LogEntry);

/** The PBKDF2 iterations each refused login of `username` ran, in order. */
function workOfFailedLogins(server: TestServer, username: string): number[] {
  return logEntries(server)
    .filter((e) => e.msg === 'authentication refused' && e.reason === `failed login for ${username}`)
    .map((e) => e.pbkdf2Iterations ?? -1);
}

function storedHash(server: TestServer, username: string): { hash: string; updatedAt: string } {
  const row = (dumpStore(server.db).users as Array<Record<string, unknown>>).find((u) => u.key === username);
  if (!row) throw new Error(`no stored user ${username}`);
  return { hash: row.password_hash as string, updatedAt: row.updated_at as string };
}

/** Writes a stored form straight into the store, as a version before SPEC §4.3's rules could have. */
async function storeLegacyHash(server: TestServer, username: string, passwordHash: string): Promise<void> {
  const store = server.running.store;
  const user = await store.findUserRecord(ROOT_GROUP, username);
  if (!user) throw new Error(`no user ${username}`);
  await store.inBatch((tx) => tx.apply({ ...emptyChangeSet(), users: [{ ...user, passwordHash }] }));
}

describe('login password checks are bounded (issue 9, point 3)', () => {
  const COSTLY_PASSWORD = 'costly user password';
  const PARALLEL = 16;

  test(`when ${PARALLEL} logins of a user with the costliest allowed hash arrive at once (one check at a time, one waiting), then the overflow gets 503 with Retry-After before any hashing, none gets 500, and the others the common 401`, async () => {
    const server = await serverWith({ passwordCheckConcurrency: 1, passwordCheckQueue: 1 });
    await seed(server, preHashed('costly.user', 'pbkdf2', COSTLY_PASSWORD, MAX_PBKDF2_ITERATIONS));
    const answers = await Promise.all(Array.from({ length: PARALLEL }, () => loginJson(server, 'costly.user', 'a wrong guess')));
    const busy = answers.filter((a) => a.status === 503);
    const refused = answers.filter((a) => a.status === 401);
    expect(busy.length + refused.length).toBe(PARALLEL);
    expect(busy.length).toBeGreaterThan(0);
    for (const answer of busy) {
      expect(answer.headers['retry-after']).toBe('1');
      expect(JSON.parse(answer.body)).toEqual({
        winstrom: { '@version': '1.0', success: false, message: 'Too many logins are being checked right now; nothing was checked. Retry shortly.' },
      });
    }
    for (const answer of refused) expectRefused(answer);
    // Only the refused ones were checked; the busy ones were turned away before hashing.
    expect(workOfFailedLogins(server, 'costly.user')).toHaveLength(refused.length);
    expect(logEntries(server).filter((e) => e.status === 500)).toEqual([]);
    expect((await loginJson(server, 'costly.user', COSTLY_PASSWORD)).status).toBe(200);
  });

  test('when a batch hashes plain-text passwords while logins fill the check queue, then the batch is applied, never refused with 503', async () => {
    const server = await serverWith({ passwordCheckConcurrency: 1, passwordCheckQueue: 1, passwordHash: 'pbkdf2', pbkdf2Iterations: 100_000 });
    await seed(server, preHashed('costly.user', 'pbkdf2', COSTLY_PASSWORD, MAX_PBKDF2_ITERATIONS));
    const batch = `<flexibee-batch id="during-logins">${['a', 'b', 'c'].map((n) => `<user><username>new.${n}</username><password>password of ${n}</password></user>`).join('')}</flexibee-batch>`;
    const [applied, ...logins] = await Promise.all([
      server.batch(batch),
      ...Array.from({ length: PARALLEL }, () => loginJson(server, 'costly.user', 'a wrong guess')),
    ]);
    expect(applied.status).toBe(200);
    expect(statuses(applied.body)).toEqual(['CREATED', 'CREATED', 'CREATED']);
    expect(logins.every((a: Response) => a.status === 401 || a.status === 503)).toBe(true);
  });
});

describe('a stored hash that cannot be parsed does not match, it never throws (issue 9, point 4)', () => {
  test.each([
    ['a pbkdf2 digest of an odd number of digits', `pbkdf2:1000:NaCl:${'a'.repeat(63)}`],
    ['a 256-digit pbkdf2 digest with 10 000 000 iterations', `pbkdf2:10000000:NaCl:${'a'.repeat(256)}`],
    ['a 9-digit sha256 digest', 'sha256:xyz987:af123bd35'],
    ['no form at all', 'garbage'],
  ])('when a user\'s stored hash is %s, then its login answers the common 401, and a batch giving it a password is applied and repairs it', async (_what, legacy) => {
    const server = await serverWith({ passwordHash: 'pbkdf2', pbkdf2Iterations: 1000 });
    await seed(server, '<user><username>legacy.user</username><password>the old password</password></user>');
    await storeLegacyHash(server, 'legacy.user', legacy);
    expectRefused(await loginJson(server, 'legacy.user', 'the old password'));
    const repair = await server.batch(
      '<flexibee-batch id="repair"><user><username>legacy.user</username><password>the old password</password></user><user><username>unrelated.user</username></user></flexibee-batch>',
    );
    expect(repair.status).toBe(200);
    expect(statuses(repair.body)).toEqual(['UPDATED', 'CREATED']);
    expect((await loginJson(server, 'legacy.user', 'the old password')).status).toBe(200);
    expect(logEntries(server).filter((e) => e.status === 500)).toEqual([]);
  });
});

describe('a failed login runs the same hashing work whatever the name (issue 9, point 11)', () => {
  const COSTLIEST = 20_000;
  const USERS = [
    preHashed('sha.user', 'sha256', 'sha password'),
    preHashed('md5.user', 'md5', 'md5 password'),
    preHashed('cheap.pbkdf2', 'pbkdf2', 'cheap password', 1_000),
    preHashed('costly.pbkdf2', 'pbkdf2', 'costly password', COSTLIEST),
    '<user><username>no.password</username></user>',
    '<user><username>blocked.user</username><password>blocked password</password><blocked>true</blocked></user>',
    '<user><username>deleted.user</username><password>deleted password</password></user><user action="delete"><username>deleted.user</username></user>',
  ].join('');
  const NAMES = ['sha.user', 'md5.user', 'cheap.pbkdf2', 'costly.pbkdf2', 'no.password', 'blocked.user', 'deleted.user', 'no.such.user'];

  test('when wrong passwords are sent for every kind of stored form and for names that cannot log in, then each check runs the PBKDF2 iterations of the costliest stored form', async () => {
    const server = await serverWith({ passwordHash: 'sha256' });
    await seed(server, USERS);
    for (const name of NAMES) expectRefused(await loginJson(server, name, 'a wrong guess'));
    expect(NAMES.map((name) => workOfFailedLogins(server, name))).toEqual(NAMES.map(() => [COSTLIEST]));
  });

  test('when a batch of this server imports a costlier form, then the next failed logins follow it at once, and a restarted server reads it from the store', async () => {
    // Closed by hand after the server restarted on its store, which it removes when closed.
    const server = await startTestServer({ passwordHash: 'sha256' });
    try {
      await seed(server, USERS);
      await seed(server, preHashed('costlier.pbkdf2', 'pbkdf2', 'costlier password', 2 * COSTLIEST));
      expectRefused(await loginJson(server, 'no.such.user', 'a wrong guess'));
      expectRefused(await loginJson(server, 'sha.user', 'a wrong guess'));
      expect([...workOfFailedLogins(server, 'no.such.user'), ...workOfFailedLogins(server, 'sha.user')]).toEqual([2 * COSTLIEST, 2 * COSTLIEST]);

      await server.running.close();
      const restarted = await startTestServer({ db: server.db, passwordHash: 'sha256' });
      try {
        expectRefused(await loginJson(restarted, 'no.such.user', 'a wrong guess'));
        expect(workOfFailedLogins(restarted, 'no.such.user')).toEqual([2 * COSTLIEST]);
      } finally {
        await restarted.close();
      }
    } finally {
      await server.close();
    }
  });

  test('when the server hashes with pbkdf2 and the store holds only digests, then every failed login runs the policy\'s iterations', async () => {
    const server = await serverWith({ passwordHash: 'pbkdf2', pbkdf2Iterations: 3_000 });
    await seed(server, preHashed('sha.user', 'sha256', 'sha password'));
    for (const name of ['sha.user', 'no.such.user']) expectRefused(await loginJson(server, name, 'a wrong guess'));
    expect([...workOfFailedLogins(server, 'sha.user'), ...workOfFailedLogins(server, 'no.such.user')]).toEqual([3_000, 3_000]);
  });

  test('when nothing in the store or the policy is pbkdf2, then no failed login runs PBKDF2', async () => {
    const server = await serverWith({ passwordHash: 'sha256' });
    await seed(server, preHashed('sha.user', 'sha256', 'sha password'));
    for (const name of ['sha.user', 'no.such.user']) expectRefused(await loginJson(server, name, 'a wrong guess'));
    expect([...workOfFailedLogins(server, 'sha.user'), ...workOfFailedLogins(server, 'no.such.user')]).toEqual([0, 0]);
  });
});

describe('weaker stored forms take the server\'s pbkdf2 policy at a successful login, and are never downgraded (issue 9, point 11)', () => {
  test.each([
    ['sha256', 1000],
    ['md5', 1000],
    ['pbkdf2', 1000],
  ] as const)('when a user with a %s form logs in under --password-hash pbkdf2 (3000 iterations), then its hash becomes pbkdf2:3000 of the same password, other fields and timestamps untouched, and a re-sent password is still SKIPPED', async (algorithm, iterations) => {
    const server = await serverWith({ passwordHash: 'pbkdf2', pbkdf2Iterations: 3_000 });
    await seed(server, preHashed('weak.user', algorithm, 'weak password', iterations));
    const before = storedHash(server, 'weak.user');
    expect((await loginJson(server, 'weak.user', 'weak password')).status).toBe(200);
    const after = storedHash(server, 'weak.user');
    expect(after.hash).toMatch(/^pbkdf2:3000:[^:]+:[0-9a-f]{64}$/);
    expect(storedHashMatches(after.hash, 'weak password')).toBe(true);
    expect(after.updatedAt).toBe(before.updatedAt);
    expect((await loginJson(server, 'weak.user', 'weak password')).status).toBe(200);
    expect(storedHash(server, 'weak.user').hash).toBe(after.hash);
    const resent = await server.batch('<flexibee-batch id="resend"><user><username>weak.user</username><password>weak password</password></user></flexibee-batch>');
    expect(statuses(resent.body)).toEqual(['SKIPPED']);
  });

  test('when a partner re-sends the pre-hashed digest a login has upgraded, then it is UPDATED back to that form, and the next login upgrades it again', async () => {
    const server = await serverWith({ passwordHash: 'pbkdf2', pbkdf2Iterations: 3_000 });
    const batch = `<flexibee-batch id="import">${preHashed('weak.user', 'sha256', 'weak password')}</flexibee-batch>`;
    expect(statuses((await server.batch(batch)).body)).toEqual(['CREATED']);
    const imported = storedHash(server, 'weak.user').hash;
    expect((await loginJson(server, 'weak.user', 'weak password')).status).toBe(200);
    expect(storedHash(server, 'weak.user').hash).toMatch(/^pbkdf2:3000:/);
    expect(statuses((await server.batch(batch)).body)).toEqual(['UPDATED']);
    expect(storedHash(server, 'weak.user').hash).toBe(imported);
    expect((await loginJson(server, 'weak.user', 'weak password')).status).toBe(200);
    expect(storedHash(server, 'weak.user').hash).toMatch(/^pbkdf2:3000:/);
  });

  test('when the stored form is stronger than the policy, the password is wrong, or the user is blocked, then the stored hash is left as it is', async () => {
    const server = await serverWith({ passwordHash: 'pbkdf2', pbkdf2Iterations: 3_000 });
    await seed(
      server,
      [
        preHashed('strong.user', 'pbkdf2', 'strong password', 5_000),
        preHashed('weak.user', 'sha256', 'weak password'),
        `<user><username>blocked.user</username>${preHashedPassword('sha256', 'b', 'blocked password')}<blocked>true</blocked></user>`,
      ].join(''),
    );
    const before = ['strong.user', 'weak.user', 'blocked.user'].map((u) => storedHash(server, u).hash);
    expect((await loginJson(server, 'strong.user', 'strong password')).status).toBe(200);
    expectRefused(await loginJson(server, 'weak.user', 'a wrong guess'));
    expect((await loginJson(server, 'blocked.user', 'blocked password')).status).toBe(401);
    expect(['strong.user', 'weak.user', 'blocked.user'].map((u) => storedHash(server, u).hash)).toEqual(before);
  });

  test('when the policy is a plain digest, then no stored form is rewritten at login: pbkdf2 is not downgraded and digests are not swapped', async () => {
    const server = await serverWith({ passwordHash: 'sha256' });
    await seed(server, [preHashed('pbkdf2.user', 'pbkdf2', 'pbkdf2 password', 1_000), preHashed('md5.user', 'md5', 'md5 password')].join(''));
    const before = ['pbkdf2.user', 'md5.user'].map((u) => storedHash(server, u).hash);
    expect((await loginJson(server, 'pbkdf2.user', 'pbkdf2 password')).status).toBe(200);
    expect((await loginJson(server, 'md5.user', 'md5 password')).status).toBe(200);
    expect(['pbkdf2.user', 'md5.user'].map((u) => storedHash(server, u).hash)).toEqual(before);
  });
});
