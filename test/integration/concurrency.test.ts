import { createHash } from 'node:crypto';
import { dumpStore, journalSummary } from '../support/stores';
import { clientBatch, comparableDump, isGenerated, plainPasswordsOf } from '../support/contested';
import { entries, startTestServer, type Response, type TestServer } from '../support/server';

/**
 * SPEC §5.4: batches arriving concurrently give the result of some serial order, and no update
 * is lost. The order the store chose is the journal's (`batch_journal.seq`, commit order):
 * replaying the journalled bodies one by one on a fresh store must give every client exactly
 * the answer it got, and the same final store.
 *
 * New plain passwords are hashed with PBKDF2 on libuv's thread pool, so a batch that sets one
 * yields the event loop in the middle of its transaction: other requests are read, parsed and
 * queued meanwhile, and only the store's serialisation keeps their transactions apart.
 */
const CLIENTS = 8;
const BATCHES_PER_CLIENT = 25;
/** Seeds of this suite's batches (the two-server suite uses others). */
const SEEDS = { generated: 9000, rng: 1 };
const HASHING = { passwordHash: 'pbkdf2', pbkdf2Iterations: 1000 } as const;

const PLAIN_PASSWORDS = plainPasswordsOf(CLIENTS);

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

type Rows = Record<string, Array<Record<string, unknown>>>;

/** Executed bodies in commit order; every journalled body must be one the test sent. */
function journalOrder(db: string, bodies: Map<string, string>): Array<{ batchId: string; sha: string; body: string }> {
  return journalSummary(db).map((j) => {
    const body = bodies.get(j.body_sha256);
    if (body === undefined) throw new Error(`the journal holds a body the test never sent: ${j.batch_id} ${j.body_sha256}`);
    return { batchId: j.batch_id, sha: j.body_sha256, body };
  });
}

/** Replays the journal's batches one by one on a fresh server; the answers that differ from the ones the clients got. */
async function replay(order: Array<{ sha: string; body: string }>, answers: Map<string, string>, fresh: TestServer): Promise<string[]> {
  const differences: string[] = [];
  for (const [i, { sha, body }] of order.entries()) {
    const res = await fresh.batch(body);
    if (res.status !== 200 || res.body !== answers.get(sha)) {
      differences.push(`#${i} (${sha.slice(0, 12)}): concurrent answer\n${answers.get(sha)}\nserial answer (${res.status})\n${res.body}`);
    }
  }
  return differences;
}

describe('concurrent batches', () => {
  const servers: TestServer[] = [];
  const start = async (overrides = {}): Promise<TestServer> => {
    const server = await startTestServer({ ...HASHING, logLevel: 'warn', ...overrides });
    servers.push(server);
    return server;
  };
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  test(`when ${CLIENTS} clients each send ${BATCHES_PER_CLIENT} interleaved batches over the same users and companies, then every answer and the final store equal a serial replay of the journal, and no update is lost`, async () => {
    const server = await start();
    const bodies = new Map<string, string>();
    const answers = new Map<string, string>();
    let inFlight = 0;
    let mostInFlight = 0;

    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let b = 0; b < BATCHES_PER_CLIENT; b++) {
          const body = clientBatch(c, b, SEEDS);
          const sha = sha256(body);
          expect(bodies.has(sha)).toBe(false);
          bodies.set(sha, body);
          inFlight++;
          mostInFlight = Math.max(mostInFlight, inFlight);
          const res = await server.batch(body);
          inFlight--;
          expect(res.status).toBe(200);
          answers.set(sha, res.body);
        }
      }),
    );
    expect(mostInFlight).toBe(CLIENTS);

    const order = journalOrder(server.db, bodies);
    // Each batch executed exactly once.
    expect(order.map((o) => o.sha).sort()).toEqual([...bodies.keys()].sort());
    const concurrent = comparableDump(server.db, PLAIN_PASSWORDS);

    // No update lost: each client's own counter holds its last batch (the generated ones do not touch it).
    const lastCounted = Math.max(...Array.from({ length: BATCHES_PER_CLIENT }, (_, b) => b).filter((b) => !isGenerated(b)));
    const counters = concurrent.users.filter((u) => String(u.key).endsWith('.counter')).map((u) => [u.key, u.family_name]);
    expect(counters).toEqual(Array.from({ length: CLIENTS }, (_, c) => [`client${c}.counter`, String(lastCounted)]));
    // The shared entities were really fought over: they exist, were changed by several clients.
    expect(concurrent.users.filter((u) => String(u.key).startsWith('shared.')).length).toBe(3);
    const writers = new Set(order.filter((o) => o.body.includes('<username>shared.anna</username>')).map((o) => /client(\d)\.counter/.exec(o.body)?.[1]));
    writers.delete(undefined);
    expect(writers.size).toBeGreaterThanOrEqual(CLIENTS - 1);

    const fresh = await start();
    expect(await replay(order, answers, fresh)).toEqual([]);
    expect(comparableDump(fresh.db, PLAIN_PASSWORDS)).toEqual(concurrent);
  }, 120_000);

  describe('the same batch id at the same moment', () => {
    /** Slow to execute: each new plain password takes a noticeable PBKDF2 on the thread pool. */
    const SLOW = { pbkdf2Iterations: 100_000 };

    function slowBatch(id: string, prefix: string, company: string): string {
      const ops: string[] = [];
      for (let i = 0; i < 8; i++) ops.push(`<user><username>${prefix}.p${i}</username><password>secret ${prefix} ${i}</password></user>`);
      for (let i = 0; i < 1000; i++) ops.push(`<user><username>${prefix}.u${i}</username><email>u${i}@${prefix}.example</email></user>`);
      ops.push(`<company><id>same_c</id><name>${company}</name><country>CZ</country><adminUser>${prefix}.p0</adminUser></company>`);
      return `<?xml version="1.0"?>\n<flexibee-batch id="${id}">\n  ${ops.join('\n  ')}\n</flexibee-batch>\n`;
    }

    test('when the same batch (id and body) is sent twice at once, then one runs and the other gets 409 with Retry-After; after it, a retry gets 200 all SKIPPED', async () => {
      const server = await start(SLOW);
      const body = slowBatch('dup-1', 'dup', 'Dup s.r.o.');
      const both = await Promise.all([server.batch(body), server.batch(body)]);

      const statuses = both.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 409]);
      const ran = both.find((r) => r.status === 200) as Response;
      const refused = both.find((r) => r.status === 409) as Response;
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.body).toContain('dup-1');
      expect(entries(ran.body).every((e) => e.status === 'CREATED')).toBe(true);
      expect(journalSummary(server.db).filter((j) => j.body_sha256 === sha256(body))).toHaveLength(1);

      // The client that got 409 finds the answer of the run in the journal, and a re-send changes nothing.
      const journalled = await server.request('GET', '/admin/batch/dup-1');
      expect(journalled.body).toBe(ran.body);
      const retry = await server.batch(body);
      expect(retry.status).toBe(200);
      expect(new Set(entries(retry.body).map((e) => e.status))).toEqual(new Set(['SKIPPED']));
      expect(journalSummary(server.db).filter((j) => j.body_sha256 === sha256(body))).toHaveLength(2);
    }, 60_000);

    test('when two different batches with the same id are sent at once, then both run, one after the other, both 200 and both journalled', async () => {
      const server = await start(SLOW);
      const first = slowBatch('same-id', 'samea', 'From A s.r.o.');
      const second = slowBatch('same-id', 'sameb', 'From B s.r.o.');
      const bodies = new Map([first, second].map((b) => [sha256(b), b]));
      const [a, b] = await Promise.all([server.batch(first), server.batch(second)]);

      expect([a.status, b.status]).toEqual([200, 200]);
      const answers = new Map([
        [sha256(first), a.body],
        [sha256(second), b.body],
      ]);
      const order = journalOrder(server.db, bodies);
      expect(order.map((o) => o.batchId)).toEqual(['same-id', 'same-id']);
      expect(order.map((o) => o.sha).sort()).toEqual([...bodies.keys()].sort());
      // Serial: the first in the journal created the shared company, the second updated it.
      const companyStatus = (xml: string): string | undefined => entries(xml).find((e) => e.id === 'same_c')?.status;
      expect(order.map((o) => companyStatus(answers.get(o.sha) as string))).toEqual(['CREATED', 'UPDATED']);
      const lastName = order[1].body.includes('From A') ? 'From A s.r.o.' : 'From B s.r.o.';
      expect((dumpStore(server.db) as Rows).companies.find((c) => c.id === 'same_c')?.name).toBe(lastName);
      expect((await server.request('GET', '/admin/batch/same-id')).body).toBe(answers.get(order[1].sha));

      const fresh = await start(SLOW);
      expect(await replay(order, answers, fresh)).toEqual([]);
      // Salted passwords are not compared by what they verify: at these iterations that is slow, and the test above does it.
      const unsalted = (rows: Rows): Rows => ({
        ...rows,
        users: rows.users.map((u) => (String(u.password_hash).startsWith('pbkdf2:') ? { ...u, password_hash: 'pbkdf2 (not compared)' } : u)),
      });
      expect(unsalted(comparableDump(fresh.db, []))).toEqual(unsalted(comparableDump(server.db, [])));
    }, 60_000);
  });
});
