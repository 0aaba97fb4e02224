import { createLogger } from '../../src/log';
import { PasswordChecks } from '../../src/server/password-checks';
import type { Store } from '../../src/store/store';

/**
 * Where the decoy work of a login comes from (issue 9, point 11): the costliest stored form, read
 * from the store at start and again once it is older than `refreshMs`, and raised at once by
 * what this process writes. A stand-in store answers the one query, so the test decides when
 * each answer arrives and what the clock says.
 */
function setUp(policy: { algorithm: 'sha256' | 'pbkdf2'; pbkdf2Iterations: number } = { algorithm: 'sha256', pbkdf2Iterations: 1 }) {
  const answers: Array<(iterations: number) => void> = [];
  const store = {
    costliestPbkdf2Iterations: () => new Promise<number>((resolve) => answers.push(resolve)),
  } as unknown as Store;
  let clock = 0;
  const checks = new PasswordChecks({ store, policy, concurrency: 1, queue: 0, logger: createLogger('silent'), refreshMs: 60_000, now: () => clock });
  return {
    checks,
    answers,
    tick: (ms: number) => void (clock += ms),
    /** Answers the query the store was asked last, and lets the answer arrive. */
    answer: async (iterations: number) => {
      const resolve = answers.at(-1);
      if (!resolve) throw new Error('the store was not asked');
      resolve(iterations);
      await new Promise(setImmediate);
    },
  };
}

const wrongLogin = (checks: PasswordChecks) => checks.check(null, 'a wrong guess', { upgrade: false });

describe('the costliest stored form (PasswordChecks)', () => {
  test('when the store holds pbkdf2 forms, then every check runs the most iterations among them', async () => {
    const { checks, answer } = setUp();
    const loaded = checks.load();
    await answer(1_500);
    await loaded;
    expect((await wrongLogin(checks)).pbkdf2Iterations).toBe(1_500);
  });

  test('when the policy is costlier than the store, then the policy decides', async () => {
    const { checks, answer } = setUp({ algorithm: 'pbkdf2', pbkdf2Iterations: 2_000 });
    const loaded = checks.load();
    await answer(1_500);
    await loaded;
    expect((await wrongLogin(checks)).pbkdf2Iterations).toBe(2_000);
  });

  test('when this process writes a costlier form while the store is being read, then the answer of the read does not lower it', async () => {
    const { checks, answer } = setUp();
    const loaded = checks.load();
    checks.note(['pbkdf2:3000:s:' + 'a'.repeat(64), 'sha256:s:' + 'b'.repeat(64), null]);
    await answer(1_000);
    await loaded;
    expect((await wrongLogin(checks)).pbkdf2Iterations).toBe(3_000);
  });

  test('when another process imported a costlier form, then a login once the last read is older than a minute reads the store again, and the logins after it follow', async () => {
    const { checks, answers, answer, tick } = setUp();
    const loaded = checks.load();
    await answer(1_000);
    await loaded;
    tick(59_999);
    expect((await wrongLogin(checks)).pbkdf2Iterations).toBe(1_000);
    expect(answers).toHaveLength(1);
    tick(1);
    expect((await wrongLogin(checks)).pbkdf2Iterations).toBe(1_000);
    expect(answers).toHaveLength(2);
    await answer(4_000);
    expect((await wrongLogin(checks)).pbkdf2Iterations).toBe(4_000);
    expect(answers).toHaveLength(2);
  });

  test('when a stored form names more iterations than the bound, then the work stays at the bound', async () => {
    const { checks, answer } = setUp();
    const loaded = checks.load();
    await answer(99_999_999);
    await loaded;
    expect(checks.work()).toBe(2_000_000);
  });
});
